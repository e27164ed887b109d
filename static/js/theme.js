// Runs before the page paints (a classic script in <head>): applies a saved theme
// choice so there is no flash. No choice saved: the CSS follows the system.
(function () {
  try {
    var t = localStorage.getItem('claudeflare.theme');
    if (t === 'light' || t === 'dark') document.documentElement.dataset.theme = t;
  } catch (e) {
    /* storage blocked: follow the system */
  }
})();
