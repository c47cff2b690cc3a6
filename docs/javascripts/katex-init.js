// Render the formulas that pymdownx.arithmatex (generic mode) leaves as \( .. \) and \[ .. \],
// with the copy of KaTeX under docs/javascripts/katex/ (served by the site itself: no CDN,
// so the docs render offline).
(function () {
  function render(root) {
    if (typeof renderMathInElement !== "function") return;
    renderMathInElement(root, {
      delimiters: [
        { left: "\\[", right: "\\]", display: true },
        { left: "\\(", right: "\\)", display: false },
      ],
      throwOnError: false,
    });
  }
  if (typeof document$ !== "undefined") {
    document$.subscribe(function (page) { render(page.body || document.body); });
  } else {
    document.addEventListener("DOMContentLoaded", function () { render(document.body); });
  }
})();
