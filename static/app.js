// What HTML and htmx cannot do here: show arriving dialogs as modals and close them in place, copy to the
// clipboard, show times in the viewer's zone, toggle loaded log details, hold the conditions of polls and
// clickable rows (htmx may not evaluate them under the page's policy), and report failures no fragment explains.
(function () {
  "use strict";

  function openDialogs(root) {
    var dialogs = root.matches && root.matches("dialog[data-modal]") ? [root] : [];
    if (root.querySelectorAll) {
      dialogs = dialogs.concat(Array.prototype.slice.call(root.querySelectorAll("dialog[data-modal]")));
    }
    dialogs.forEach(function (dialog) {
      if (!dialog.isConnected || (dialog.open && dialog.matches(":modal"))) return;
      if (dialog.open) dialog.close();
      dialog.showModal();
      var focus = dialog.querySelector("[autofocus]");
      if (focus) focus.focus();
    });
  }

  function closeDialog(dialog) {
    dialog.close();
    dialog.remove();
  }

  // Say that a request failed, where the server's error fragment would have gone (errors/error.html).
  function showRequestError(message) {
    var openDialog = document.querySelector("#dialog-host dialog[open]");
    var regions = [document.getElementById("request-error"), openDialog && openDialog.querySelector(".request-error")];
    regions.forEach(function (region) {
      if (!region) return;
      var alert = document.createElement("p");
      alert.className = "alert alert-error";
      alert.textContent = message;
      region.replaceChildren(alert);
    });
  }

  // Show times in the viewer's time zone; the UTC instant stays in the title.
  function localTimes(root) {
    var times = root.querySelectorAll ? root.querySelectorAll("time[data-local]") : [];
    Array.prototype.forEach.call(times, function (element) {
      var moment = new Date(element.getAttribute("datetime"));
      if (isNaN(moment)) return;
      element.textContent = moment.toLocaleString(undefined, {
        year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit"
      });
      element.removeAttribute("data-local");
    });
  }

  function onNewContent(root) {
    openDialogs(root);
    localTimes(root);
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (window.htmx) {
      htmx.onLoad(onNewContent);
    } else {
      onNewContent(document);
    }
  });
  document.addEventListener("htmx:oobAfterSwap", function (event) { onNewContent(event.detail.target || document); });

  document.addEventListener("click", function (event) {
    // A log row whose details are loaded toggles them instead of fetching again.
    var logRow = event.target.closest("tr.log-row");
    if (logRow && !event.target.closest("a")) {
      var details = document.getElementById(logRow.id.replace("message-row-", "message-details-"));
      if (details && details.dataset.loaded) {
        details.hidden = !details.hidden;
      }
      var toggle = logRow.querySelector("[aria-controls]");
      if (toggle && details) toggle.setAttribute("aria-expanded", details.dataset.loaded ? String(!details.hidden) : "true");
    }
    var closer = event.target.closest("[data-close-dialog]");
    if (closer && closer.closest("#dialog-host")) {
      event.preventDefault();
      closeDialog(closer.closest("dialog"));
      return;
    }
    var copier = event.target.closest("[data-copy]");
    if (copier) {
      var input = document.querySelector(copier.getAttribute("data-copy"));
      input.select();
      var done = function () { copier.textContent = "Copied"; };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(input.value).then(done, function () { document.execCommand("copy"); done(); });
      } else {
        document.execCommand("copy");
        done();
      }
    }
  });

  document.addEventListener("cancel", function (event) {
    // Escape on a modal: remove it from the host so it does not linger hidden.
    if (event.target.matches("#dialog-host dialog")) {
      event.preventDefault();
      closeDialog(event.target);
    }
  }, true);

  function overlayOpen() {
    return Boolean(document.querySelector("#dialog-host dialog, [popover]:popover-open"));
  }

  // The page's conditions for a request, kept here rather than in hx-trigger filters: htmx evaluates
  // those with Function, which the Content-Security-Policy forbids (allowEval is off).
  document.addEventListener("htmx:confirm", function (event) {
    var source = event.detail.elt;
    var trigger = event.detail.triggeringEvent;
    // Live polls skip their turn while the tab is hidden or a dialog or menu is open.
    if (source.hasAttribute("data-live-poll") && (document.visibilityState !== "visible" || overlayOpen())) {
      event.preventDefault();
      return;
    }
    // A webhook row opens its edit dialog, unless the click was on one of its own links, buttons, forms or menu.
    if (source.hasAttribute("data-row-click") && trigger && trigger.target.closest &&
        trigger.target.closest("a, button, form, input, label, [popover]")) {
      event.preventDefault();
      return;
    }
    // A log row fetches its details once; afterwards a click toggles them (see the click handler).
    if (source.hasAttribute("data-details")) {
      var details = document.getElementById(source.getAttribute("data-details"));
      if ((details && details.dataset.loaded) || (trigger && trigger.target.closest && trigger.target.closest("a"))) {
        event.preventDefault();
      }
    }
  });

  document.addEventListener("htmx:beforeSwap", function (event) {
    var detail = event.detail;
    // A failure the server explains comes as a fragment it retargets at an error region (webhooks_app/htmx.py).
    if (detail.isError && detail.xhr.getResponseHeader("HX-Retarget")) {
      detail.shouldSwap = true;
      detail.isError = false;
    }
    // A live poll already in flight when the administrator opened a menu or dialog must not redraw the
    // table under it (that would close the menu); the next poll, once it is closed, brings the change.
    if (detail.elt && detail.elt.id === "webhooks-live" && overlayOpen()) {
      detail.shouldSwap = false;
    }
  });

  // A new request by the administrator (polls have no triggering event) clears the errors of the last one.
  document.addEventListener("htmx:beforeRequest", function (event) {
    if (!event.detail.requestConfig || !event.detail.requestConfig.triggeringEvent) return;
    document.querySelectorAll(".request-error").forEach(function (region) { region.replaceChildren(); });
  });
  // Any other failed answer (a proxy's error page, say) is not swapped; only its status is shown.
  document.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail.xhr;
    showRequestError("The request failed (HTTP " + xhr.status + (xhr.statusText ? " " + xhr.statusText : "") + "). Try again.");
  });
  document.addEventListener("htmx:sendError", function () {
    showRequestError("The server could not be reached. Check your connection and try again.");
  });
})();
