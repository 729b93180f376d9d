// Applies the saved colour scheme before the first paint (a classic script,
// not inline, so a strict Content-Security-Policy allows it).
(function () {
  try {
    var saved = window.localStorage.getItem('testarena-theme');
    if (saved === 'dark' || saved === 'light') {
      document.documentElement.setAttribute('data-theme', saved);
    }
  } catch (e) {
    /* storage unavailable: follow the system */
  }
})();
