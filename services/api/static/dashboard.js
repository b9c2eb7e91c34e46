// Tenzo Developer Tools: copy buttons, and refreshing a delivery while it is pending.
// Everything works without this file; it only saves steps.
(function () {
  "use strict";

  function selectAndCopy(input) {
    input.select();
    return document.execCommand("copy") ? Promise.resolve() : Promise.reject(new Error("copy"));
  }

  // The Clipboard API refuses when the page has lost focus for a moment (a busy
  // machine, another window): the selection and copy command are tried before giving up.
  function copyText(input) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(input.value).catch(function () {
        return selectAndCopy(input);
      });
    }
    return selectAndCopy(input);
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) return;
    var id = button.getAttribute("data-copy");
    var input = document.getElementById(id);
    var status = document.querySelector('[data-copy-status="' + id + '"]');
    copyText(input).then(
      function () { if (status) status.textContent = "Copied to the clipboard."; },
      function () {
        input.select();
        if (status) status.textContent = "Press Ctrl+C (⌘C) to copy the selected text.";
      }
    );
  });

  // A region marked data-refresh gets its content again from the server every second
  // until the server stops marking it (e.g. a delivery that is no longer pending).
  function refresh(region, rounds) {
    if (rounds <= 0) return;
    window.setTimeout(function () {
      fetch(window.location.href, { headers: { Accept: "text/html" }, credentials: "same-origin" })
        .then(function (response) { return response.ok ? response.text() : null; })
        .then(function (html) {
          if (!html) return;
          var fresh = new DOMParser().parseFromString(html, "text/html").getElementById(region.id);
          if (!fresh) return;
          // Replace the content, not the element, so its aria-live announces the change.
          region.innerHTML = fresh.innerHTML;
          if (fresh.hasAttribute("data-refresh")) {
            refresh(region, rounds - 1);
          } else {
            region.removeAttribute("data-refresh");
            region.removeAttribute("aria-busy");
          }
        })
        .catch(function () { /* offline or signed out: the page still works by reloading */ });
    }, 1000);
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-refresh][id]").forEach(function (region) { refresh(region, 60); });
  });
})();
