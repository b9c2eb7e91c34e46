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
          var opened = openPanes(region);
          region.innerHTML = fresh.innerHTML;
          reopenPanes(region, opened);
          if (fresh.hasAttribute("data-refresh")) {
            refresh(region, rounds - 1);
          } else {
            region.removeAttribute("data-refresh");
            region.removeAttribute("aria-busy");
            focusOutcome(region);
          }
        })
        .catch(function () { /* offline or signed out: the page still works by reloading */ });
    }, 1000);
  }

  // Panes a person opened stay open when the region is refreshed.
  function openPanes(region) {
    var ids = [];
    region.querySelectorAll("details[id]").forEach(function (pane) { if (pane.open) ids.push(pane.id); });
    return ids;
  }

  function reopenPanes(region, ids) {
    ids.forEach(function (id) {
      var pane = region.querySelector("details#" + CSS.escape(id));
      if (pane) pane.open = true;
    });
  }

  // The message saying how an action ended (or that it is under way) takes the focus,
  // so that keyboard and screen reader users start from it.
  function focusOutcome(scope) {
    var message = scope.querySelector("[data-outcome]");
    if (message) message.focus();
  }

  document.addEventListener("DOMContentLoaded", function () {
    focusOutcome(document);
    // Long enough for every attempt of a delivery (delays and timeouts included).
    document.querySelectorAll("[data-refresh][id]").forEach(function (region) { refresh(region, 600); });
  });
})();
