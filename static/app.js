// What HTML and htmx cannot do here: show arriving dialogs as modals, close them in place and give the focus back
// to what opened them, copy to the clipboard, show times in the viewer's zone (and read typed ones in it), toggle
// loaded log details, hold the conditions of polls and clickable rows (htmx may not evaluate them under the page's
// policy), and report failures no fragment explains.
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

  // What opened the dialog now in the host: the focus goes back there when it closes. A row's menu item is gone
  // from view by then (its popover closed) and may have been redrawn: its menu's button takes the focus.
  var opener = null;

  function rememberOpener(element) {
    var popover = element.closest("[popover]");
    opener = {element: element, menu: popover ? popover.id : null, id: element.id || null};
  }

  function restoreFocus() {
    var from = opener;
    opener = null;
    if (!from) return;
    var target = from.menu ? document.querySelector('[popovertarget="' + from.menu + '"]') : from.element;
    if (target && !target.isConnected && from.id) target = document.getElementById(from.id);
    // A clicked table row is not focusable: its name link is.
    if (target && target.matches("tr")) target = target.querySelector("a[href]");
    if (target && target.isConnected) target.focus();
  }

  function closeDialog(dialog) {
    dialog.close();
    dialog.remove();
    restoreFocus();
  }

  // A datetime-local input the server filled in UTC (data-utc) shows the viewer's local time instead, and its hint
  // says which zone; requests then carry the offset of the time typed (tz_offset), read back to UTC by the server.
  function pad(number) { return String(number).padStart(2, "0"); }

  function localInputs(root) {
    var inputs = root.querySelectorAll ? root.querySelectorAll("input[data-utc]") : [];
    Array.prototype.forEach.call(inputs, function (input) {
      var moment = new Date(input.getAttribute("data-utc"));
      if (isNaN(moment)) return;
      input.value = moment.getFullYear() + "-" + pad(moment.getMonth() + 1) + "-" + pad(moment.getDate()) + "T" +
        pad(moment.getHours()) + ":" + pad(moment.getMinutes());
      input.removeAttribute("data-utc");
    });
    var hints = root.querySelectorAll ? root.querySelectorAll("[data-zone-hint]") : [];
    Array.prototype.forEach.call(hints, function (hint) {
      var zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "local time";
      hint.textContent = hint.textContent.replace("In UTC.", "In your time zone (" + zone + ").");
      hint.removeAttribute("data-zone-hint");
    });
  }

  document.addEventListener("htmx:configRequest", function (event) {
    var parameters = event.detail.parameters;
    var since = parameters.since;
    if (typeof since === "string" && since && parameters.tz_offset !== undefined) {
      var typed = new Date(since);
      if (!isNaN(typed)) parameters.tz_offset = String(typed.getTimezoneOffset());
    }
  });

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
    localInputs(root);
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

  // A request that will fill the empty dialog host: remember what made it, to give it the focus back.
  document.addEventListener("htmx:beforeRequest", function (event) {
    var host = document.getElementById("dialog-host");
    if (event.detail.target === host && !host.querySelector("dialog")) {
      var elt = event.detail.elt;
      var submitter = event.detail.requestConfig && event.detail.requestConfig.triggeringEvent &&
        event.detail.requestConfig.triggeringEvent.submitter;
      rememberOpener(submitter || elt);
    }
  });
  // A dialog closed by its server answer (the host emptied): the focus goes back to its opener.
  document.addEventListener("htmx:afterSwap", function (event) {
    var host = document.getElementById("dialog-host");
    if (event.detail.target === host && !host.querySelector("dialog")) restoreFocus();
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
