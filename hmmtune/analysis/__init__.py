"""Conditions and certificates for head, prompt and memory tuning (THEORY.md 4-6)."""
