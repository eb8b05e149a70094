// reelsync web UI: live updates (server push with EventSource, else a refresh every few seconds),
// copy buttons, confirmations of destructive actions. No inline script (the CSP forbids it);
// loaded with defer from /ui/static/.
(function () {
  "use strict";

  document.addEventListener("submit", function (event) {
    var message = event.target.getAttribute("data-confirm");
    if (message && !window.confirm(message)) {
      event.preventDefault();
    }
  });

  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("button[data-copy]") : null;
    if (!button) {
      return;
    }
    var source = document.getElementById(button.getAttribute("data-copy"));
    if (!source) {
      return;
    }
    var text = source.textContent;
    var done = function () {
      button.textContent = "Copied";
      button.setAttribute("aria-live", "polite");
    };
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(text).then(done, function () {
        window.getSelection().selectAllChildren(source);
      });
    } else {
      window.getSelection().selectAllChildren(source);
    }
  });

  var main = document.getElementById("content");
  if (!main) {
    return;
  }
  var seconds = parseInt(main.getAttribute("data-refresh") || "0", 10);
  var events = main.getAttribute("data-events");
  if (!(seconds > 0) && !events) {
    return;
  }
  var busy = false;
  var again = false;
  var last = 0; // when the last refresh ended (ms)
  var quietUntil = 0; // a big page is not fetched again before this (4 x what it took)
  var pending = null;

  function editing() {
    // Never replace the page under someone typing or choosing in a form.
    var active = document.activeElement;
    return active && active !== document.body && main.contains(active) &&
      /^(INPUT|SELECT|TEXTAREA)$/.test(active.tagName);
  }

  function refresh() {
    if (document.hidden || editing()) {
      return;
    }
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    var started = Date.now();
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
        last = Date.now();
        quietUntil = last + Math.max(1000, 4 * (last - started));
        if (again) {
          again = false;
          soon();
        }
      });
  }

  function soon() {
    // A change was pushed: refresh now, or when the quiet time after the last refresh ends.
    var wait = quietUntil - Date.now();
    if (wait <= 0) {
      refresh();
    } else if (pending === null) {
      pending = window.setTimeout(function () {
        pending = null;
        refresh();
      }, wait);
    }
  }

  var timer = null;
  function poll() {
    if (timer === null && seconds > 0) {
      timer = window.setInterval(function () {
        if (Date.now() - last >= seconds * 1000) {
          soon();
        }
      }, seconds * 1000);
    }
  }

  if (events && window.EventSource) {
    // Server push: the page fetches itself when the server says something changed.
    var source = new EventSource(events);
    source.addEventListener("change", soon);
    // The session ended (signed out elsewhere, key revoked): stop listening; the reload leads to
    // the sign-in page.
    source.addEventListener("ended", function () {
      source.close();
      window.location.reload();
    });
  }
  poll(); // and a slow refresh in any case (times such as "12s ago" move on)
})();
