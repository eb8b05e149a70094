// reelsync web UI: refresh the page's data in place, confirm destructive actions. No inline script
// (the CSP forbids it); loaded with defer from /ui/static/.
(function () {
  "use strict";

  document.addEventListener("submit", function (event) {
    var message = event.target.getAttribute("data-confirm");
    if (message && !window.confirm(message)) {
      event.preventDefault();
    }
  });

  var main = document.getElementById("content");
  if (!main) {
    return;
  }
  var seconds = parseInt(main.getAttribute("data-refresh") || "0", 10);
  if (!(seconds > 0)) {
    return;
  }
  var busy = false;

  function refresh() {
    if (busy || document.hidden) {
      return;
    }
    busy = true;
    fetch(window.location.href, { credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        // Signed out or the page went away: let the browser show what the server says.
        if (response.redirected || !response.ok) {
          window.location.reload();
          return null;
        }
        return response.text();
      })
      .then(function (html) {
        if (html === null) {
          return;
        }
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("content");
        if (fresh) {
          main.replaceChildren.apply(
            main,
            Array.prototype.map.call(fresh.childNodes, function (node) {
              return document.importNode(node, true);
            })
          );
        }
      })
      .catch(function () {
        // The server is unreachable for a moment: try again at the next tick.
      })
      .then(function () {
        busy = false;
      });
  }

  window.setInterval(refresh, seconds * 1000);
})();
