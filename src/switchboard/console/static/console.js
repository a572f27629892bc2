// Live refresh without a framework: every few seconds, fetch this page again and swap the
// regions marked data-live (by id). Paused while the tab is hidden, a form field has focus or
// an expanded <details> would be collapsed by the swap.
(function () {
  "use strict";
  var seconds = parseInt(document.body.getAttribute("data-refresh") || "0", 10);
  if (!seconds) return;
  var status = document.getElementById("live-status");

  function busy() {
    var el = document.activeElement;
    return (
      document.hidden ||
      (el && /^(INPUT|SELECT|TEXTAREA)$/.test(el.tagName)) ||
      document.querySelector("[data-live] details[open]") !== null
    );
  }

  function refresh() {
    if (busy()) return;
    fetch(window.location.href, { credentials: "same-origin", headers: { "X-Console-Refresh": "1" } })
      .then(function (response) {
        if (response.redirected || !response.ok) {
          // Session expired or the page is gone: let the browser show what a reload shows.
          window.location.reload();
          return null;
        }
        return response.text();
      })
      .then(function (html) {
        if (html === null) return;
        var fresh = new DOMParser().parseFromString(html, "text/html");
        document.querySelectorAll("[data-live]").forEach(function (region) {
          var next = fresh.getElementById(region.id);
          if (next) region.replaceWith(document.importNode(next, true));
        });
        if (status) {
          status.classList.remove("stale");
          status.title = "Updated " + new Date().toLocaleTimeString();
        }
      })
      .catch(function () {
        if (status) status.classList.add("stale");
      });
  }

  window.setInterval(refresh, seconds * 1000);
})();

// Copy buttons: <button data-copy="input-id"> copies that input's value (the connect link).
(function () {
  "use strict";
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    button.addEventListener("click", function () {
      var field = document.getElementById(button.getAttribute("data-copy"));
      if (!field) return;
      field.select();
      var done = function () { button.textContent = "Copied"; };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(field.value).then(done, function () {});
      } else if (document.execCommand("copy")) {
        done();
      }
    });
  });
})();
