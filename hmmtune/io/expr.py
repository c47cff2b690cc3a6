"""A small, safe grammar for the exact entries of model and task files.

Entries such as ``"1/3"``, ``"0.25"``, ``"1 - a"`` or ``"a^2/(1 + a)"`` are read by the
recursive-descent parser below into sympy objects. Nothing a file says is ever evaluated
as Python: there is no ``sympify``, no ``eval``, no attribute access, no calls. The
grammar::

    expr    := term (("+" | "-") term)*
    term    := unary (("*" | "/") unary)*
    unary   := ("+" | "-") unary | power
    power   := atom (("^" | "**") ["+" | "-"] INTEGER)?
    atom    := NUMBER | NAME | "(" expr ")"
    NUMBER  := digits ["." digits] [("e" | "E") ["+" | "-"] digits]   (also ".5")
    NAME    := a declared parameter (an identifier)

Limits (each violation raises :class:`ExpressionError` naming the entry): at most
``MAX_CHARS`` characters, ``MAX_TOKENS`` tokens, ``MAX_DEPTH`` nested parentheses or signs,
``MAX_DIGITS`` digits in a number, a decimal exponent of at most ``MAX_DECIMAL_EXPONENT``,
integer powers of at most ``MAX_POWER`` in absolute value, and a degree in the parameters
of at most ``MAX_DEGREE`` (numerator and denominator, bounded from the expression's tree). Division by an expression
that is exactly zero is refused. Powers do not nest:
``a^2^3`` and ``(a^2)^3`` are refused (write ``a^6``): a power applies to no expression
that already holds one, so the degree of an entry stays below ``MAX_POWER * MAX_TOKENS``.
"""

from __future__ import annotations

import re
from typing import Mapping

import sympy

__all__ = [
    "ExpressionError",
    "parse_expression",
    "MAX_CHARS",
    "MAX_TOKENS",
    "MAX_DEPTH",
    "MAX_DIGITS",
    "MAX_POWER",
    "MAX_DECIMAL_EXPONENT",
    "MAX_DEGREE",
]

MAX_CHARS = 1000
MAX_TOKENS = 200
MAX_DEPTH = 32
MAX_DIGITS = 60
MAX_POWER = 16
MAX_DECIMAL_EXPONENT = 60
MAX_DEGREE = 64


class ExpressionError(ValueError):
    """An entry that the safe grammar refuses; the message says why."""


_TOKEN = re.compile(
    r"\s*(?:"
    r"(?P<num>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op>\*\*|[-+*/^()])"
    r")"
)


_SIMPLE = re.compile(r"\s*(?P<sign>[-+]?)\s*(?P<p>\d{1,%d})\s*(?:/\s*(?P<q>\d{1,%d})\s*)?" % (MAX_DIGITS, MAX_DIGITS))


def _tokenize(text: str) -> list[tuple[str, str]]:
    out = []
    pos, n = 0, len(text)
    while pos < n:
        if text[pos].isspace():
            pos += 1
            continue
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            ch = text[pos]
            raise ExpressionError(f"unexpected character {ch!r} at position {pos}")
        kind = m.lastgroup
        out.append((kind, m.group(kind)))
        if len(out) > MAX_TOKENS:
            raise ExpressionError(f"more than {MAX_TOKENS} tokens (the limit for one entry)")
        pos = m.end()
    return out


def _number(text: str) -> sympy.Rational:
    mant, _, exp = text.lower().partition("e")
    whole, _, frac = mant.partition(".")
    digits = (whole + frac).lstrip("0")
    if len(digits) > MAX_DIGITS:
        raise ExpressionError(f"number {text[:20]}... has more than {MAX_DIGITS} digits")
    e = 0
    if exp:
        exp_digits = exp.lstrip("+-").lstrip("0")
        if len(exp_digits) > 4 or int(exp) and abs(int(exp)) > MAX_DECIMAL_EXPONENT:
            raise ExpressionError(f"decimal exponent in {text!r} exceeds {MAX_DECIMAL_EXPONENT}")
        e = int(exp)
    value = sympy.Rational(int(whole + frac or "0"), 10 ** len(frac))
    if e:
        value = value * sympy.Rational(10) ** e
    return value


class _Parser:
    def __init__(self, tokens, symbols: Mapping[str, sympy.Symbol]):
        self.tokens = tokens
        self.i = 0
        self.symbols = symbols
        self.depth = 0
        self.powered = False  # did the expression parsed so far apply a power?

    def peek(self):
        return self.tokens[self.i] if self.i < len(self.tokens) else (None, None)

    def take(self):
        tok = self.peek()
        self.i += 1
        return tok

    def nest(self):
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExpressionError(f"nested deeper than {MAX_DEPTH} levels")

    def expr(self):
        value = self.term()
        while self.peek() in (("op", "+"), ("op", "-")):
            op = self.take()[1]
            rhs = self.term()
            value = value + rhs if op == "+" else value - rhs
        return value

    def term(self):
        value = self.unary()
        while self.peek() in (("op", "*"), ("op", "/")):
            op = self.take()[1]
            rhs = self.unary()
            if op == "*":
                value = value * rhs
            else:
                if rhs == 0:
                    raise ExpressionError("division by zero")
                value = value / rhs
        return value

    def unary(self):
        if self.peek() in (("op", "+"), ("op", "-")):
            op = self.take()[1]
            self.nest()
            value = self.unary()
            self.depth -= 1
            return -value if op == "-" else value
        return self.power()

    def power(self):
        outer, self.powered = self.powered, False
        base = self.atom()
        inner = self.powered
        if self.peek() in (("op", "^"), ("op", "**")):
            self.take()
            if inner:
                raise ExpressionError("a power of an expression holding a power is refused (expand it by hand)")
            paren = self.peek() == ("op", "(")
            if paren:
                self.take()
            sign = 1
            if self.peek() in (("op", "+"), ("op", "-")):
                sign = -1 if self.take()[1] == "-" else 1
            kind, text = self.take()
            if kind != "num" or not text.isdigit():
                raise ExpressionError("an exponent must be an integer literal (such as 2 or -1)")
            if paren and self.take() != ("op", ")"):
                raise ExpressionError("missing ')' after the exponent")
            if len(text.lstrip("0")) > 3 or int(text) > MAX_POWER:
                raise ExpressionError(f"exponent {text[:10]} exceeds the limit {MAX_POWER}")
            e = sign * int(text)
            if e < 0 and base == 0:
                raise ExpressionError("division by zero (zero to a negative power)")
            if self.peek() in (("op", "^"), ("op", "**")):
                raise ExpressionError("chained powers are refused: write a single power such as a^6")
            self.powered = True
            return base**e
        self.powered = outer or inner
        return base

    def atom(self):
        kind, text = self.take()
        if kind == "num":
            return _number(text)
        if kind == "name":
            if text not in self.symbols:
                if not self.symbols:
                    raise ExpressionError(f"unknown name {text!r}")
                raise ExpressionError(f"unknown name {text!r} (declared parameters: {', '.join(sorted(self.symbols))})")
            return self.symbols[text]
        if (kind, text) == ("op", "("):
            self.nest()
            value = self.expr()
            if self.take() != ("op", ")"):
                raise ExpressionError("missing ')'")
            self.depth -= 1
            return value
        if kind is None:
            raise ExpressionError("unexpected end of the expression")
        raise ExpressionError(f"unexpected {text!r}")


def parse_expression(text: str, symbols: Mapping[str, sympy.Symbol] | None = None) -> sympy.Expr:
    """Parse ``text`` with the grammar above into an exact sympy expression.

    Args:
        text: the entry, e.g. ``"1/3"`` or ``"1 - a"``.
        symbols: declared parameter names and their sympy symbols (none by default).

    Returns:
        A sympy Rational when ``text`` holds no symbol, else a rational function of them.

    Raises:
        ExpressionError: (a ``ValueError``) saying what is refused; callers add the file,
            field and entry.
    """
    if not isinstance(text, str):
        raise ExpressionError(f"expected a string, got {type(text).__name__}")
    if len(text) > MAX_CHARS:
        raise ExpressionError(f"{len(text)} characters, more than the limit {MAX_CHARS} for one entry")
    simple = _SIMPLE.fullmatch(text)
    if simple:  # the common "p/q" or "p": integers only, no tokenizer (20x faster)
        sign, p, q = simple.group("sign"), simple.group("p"), simple.group("q") or "1"
        if int(q) == 0:
            raise ExpressionError("division by zero")
        value = sympy.Rational(int(p), int(q))
        return -value if sign == "-" else value
    tokens = _tokenize(text)
    if not tokens:
        raise ExpressionError("empty expression")
    parser = _Parser(tokens, dict(symbols or {}))
    value = parser.expr()
    if parser.i != len(tokens):
        raise ExpressionError(f"unexpected {tokens[parser.i][1]!r} after a complete expression")
    if value.free_symbols and _degree_bound(value) > MAX_DEGREE:
        raise ExpressionError(f"degree above the limit {MAX_DEGREE} in the parameters")
    return value


def _degree_bound(e) -> int:
    """An upper bound of the degree of numerator and denominator, from the tree (no expansion)."""
    if e.is_Symbol:
        return 1
    if e.is_Number:
        return 0
    if e.is_Pow:
        return abs(int(e.exp)) * _degree_bound(e.base)
    if e.is_Mul:
        return sum(_degree_bound(a) for a in e.args)
    return sum(_degree_bound(a) for a in e.args) if e.is_Add else max((_degree_bound(a) for a in e.args), default=0)
