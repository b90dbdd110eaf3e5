// MathJax 3 for the site. Markdown pages: pymdownx.arithmatex (generic) wraps their maths in
// \( \) and \[ \]. Tutorials: mkdocs-jupyter leaves the notebooks' $ and $$ as written.
// Code and pre blocks are skipped by MathJax's defaults.
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"], ["$", "$"]],
    displayMath: [["\\[", "\\]"], ["$$", "$$"]],
    processEscapes: true,
  },
};

// Material's instant navigation swaps pages without a reload: typeset each new page.
if (typeof document$ !== "undefined") {
  document$.subscribe(() => {
    if (window.MathJax && MathJax.typesetPromise) {
      MathJax.typesetPromise();
    }
  });
}
