// What HTML and htmx cannot do here: show arriving dialogs as modals, close them in place and give the focus back
// to what opened them, keep the focus and the reader's place through live redraws, copy to the clipboard, show
// times in the viewer's zone (and read typed ones in it), toggle loaded log details, hold the conditions of polls
// and clickable rows (htmx may not evaluate them under the page's policy), and report failures no fragment explains.
(function () {
  "use strict";

  var FOCUSABLE = "a[href], button:not([disabled]), input:not([type=hidden]):not([disabled]), select, textarea, [tabindex]";

  // ---- Dialogs -------------------------------------------------------------------------------------------------
  // Whatever opens a dialog in the dialog host is remembered (by id, since a live redraw may replace the element)
  // and gets the focus back when the host is empty again: Escape, ×, Cancel, Done, or a Save that closes it.
  var opener = null;

  function focusTarget(element) {
    if (!element || !element.closest) return null;
    // A menu item's popover is closed by then: its ⋯ button stands for it.
    var popover = element.closest("[popover]");
    if (popover && popover.id && !popover.matches(".sidebar")) {
      var invoker = document.querySelector('[popovertarget="' + popover.id + '"]');
      if (invoker) return invoker;
    }
    if (element.matches("form")) element = element.querySelector("button, [type=submit]") || element;
    if (!element.matches(FOCUSABLE)) element = element.querySelector(FOCUSABLE) || element;
    return element;
  }

  function remember(element) {
    var target = focusTarget(element);
    if (!target) return;
    opener = { element: target, id: target.id || null };
  }

  function giveFocusBack() {
    var saved = opener;
    opener = null;
    if (!saved) return;
    var target = saved.id ? document.getElementById(saved.id) : null;
    if (!target && saved.element.isConnected) target = saved.element;
    if (!target) target = document.getElementById("main");
    target.focus({ preventScroll: false });
  }

  function dialogHost() { return document.getElementById("dialog-host"); }

  function hostIsEmpty() {
    var host = dialogHost();
    return !host || !host.querySelector("dialog");
  }

  function firstInvalid(root) {
    return root.querySelector('[aria-invalid="true"]');
  }

  function openDialogs(root) {
    var dialogs = root.matches && root.matches("dialog[data-modal]") ? [root] : [];
    if (root.querySelectorAll) {
      dialogs = dialogs.concat(Array.prototype.slice.call(root.querySelectorAll("dialog[data-modal]")));
    }
    dialogs.forEach(function (dialog) {
      if (!dialog.isConnected || (dialog.open && dialog.matches(":modal"))) return;
      if (dialog.open) dialog.close();
      if (!opener && document.activeElement && document.activeElement !== document.body) remember(document.activeElement);
      dialog.showModal();
      // A refused form puts the focus on its first field with an error; otherwise the dialog's autofocus.
      var focus = firstInvalid(dialog) || dialog.querySelector("[autofocus]");
      if (focus) focus.focus();
    });
  }

  function closeDialog(dialog) {
    dialog.close();
    dialog.remove();
    if (hostIsEmpty()) giveFocusBack();
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

  // The UTC offset of a local time typed into a form (getTimezoneOffset: UTC minus local, in minutes), or null.
  function offsetOf(since) {
    var typed = typeof since === "string" && since ? new Date(since) : null;
    return typed && !isNaN(typed) ? String(typed.getTimezoneOffset()) : null;
  }

  document.addEventListener("htmx:configRequest", function (event) {
    var parameters = event.detail.parameters;
    var offset = parameters.tz_offset !== undefined ? offsetOf(parameters.since) : null;
    if (offset !== null) parameters.tz_offset = offset;
  });

  // A form sent without htmx (the dialog opened as a page of its own) carries the offset in its hidden field.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var zone = form.elements && form.elements.namedItem("tz_offset");
    var since = form.elements && form.elements.namedItem("since");
    var offset = zone && since ? offsetOf(since.value) : null;
    if (offset !== null) zone.value = offset;
  }, true);

  // ---- Errors --------------------------------------------------------------------------------------------------
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

  // ---- Times ---------------------------------------------------------------------------------------------------
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

  // ---- The live log keeps the reader's place ---------------------------------------------------------------------
  // New rows the poll brings while the reader is scrolled down wait hidden behind an "N new" button at the top.
  function readerAtTop() {
    var rows = document.getElementById("log-rows");
    if (!rows) return true;
    return rows.getBoundingClientRect().top >= 0;
  }

  function heldRows() {
    return Array.prototype.slice.call(document.querySelectorAll("#log-rows tr.log-row[data-held]"));
  }

  function updateNewButton() {
    var bar = document.getElementById("log-new-rows");
    if (!bar) return;
    var count = heldRows().length;
    bar.hidden = count === 0;
    var button = bar.querySelector("button");
    if (button) button.textContent = count === 1 ? "1 new message" : count + " new messages";
  }

  function placeNewRows(root) {
    var rows = root.querySelectorAll ? root.querySelectorAll("tr.log-row[data-new]") : [];
    if (!rows.length) return;
    var hold = !readerAtTop();
    Array.prototype.forEach.call(rows, function (row) {
      row.removeAttribute("data-new");
      if (hold) row.setAttribute("data-held", "");
    });
    updateNewButton();
  }

  function showHeldRows() {
    heldRows().forEach(function (row) { row.removeAttribute("data-held"); });
    updateNewButton();
    var table = document.getElementById("log-rows");
    if (table) {
      table.closest(".table-panel").scrollIntoView({ block: "start" });
      var first = table.querySelector("tr.log-row button");
      if (first) first.focus({ preventScroll: true });
    }
  }

  // ---- Focus through redraws ----------------------------------------------------------------------------------
  // A redraw (a live poll, a toggle, a filter) that replaces the focused element gives the focus to its successor
  // with the same id, so keyboard users keep their place.
  var focusedId = null;

  function rememberFocus() {
    var active = document.activeElement;
    focusedId = active && active !== document.body && active.id ? active.id : null;
  }

  function restoreFocus() {
    var active = document.activeElement;
    if (!focusedId || (active && active !== document.body && active.isConnected)) return;
    var successor = document.getElementById(focusedId);
    if (successor && !successor.closest("[hidden], [data-held]")) successor.focus({ preventScroll: true });
  }

  function onNewContent(root) {
    openDialogs(root);
    localTimes(root);
    localInputs(root);
    placeNewRows(root);
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (window.htmx) {
      htmx.onLoad(onNewContent);
    } else {
      onNewContent(document);
    }
    // The dialog host emptied by a swap (a Save or Delete that closes its dialog) gives the focus back.
    var host = dialogHost();
    if (host && window.MutationObserver) {
      new MutationObserver(function () {
        if (opener && hostIsEmpty()) setTimeout(function () { if (hostIsEmpty()) giveFocusBack(); }, 0);
      }).observe(host, { childList: true });
    }
  });
  document.addEventListener("htmx:oobAfterSwap", function (event) { onNewContent(event.detail.target || document); });

  // ---- Clicks --------------------------------------------------------------------------------------------------
  function copyText(copier) {
    var source = document.querySelector(copier.getAttribute("data-copy"));
    if (!source) return;
    var text = "value" in source && source.value !== undefined && source.matches("input, textarea") ? source.value : source.textContent;
    if (source.select) source.select();
    var label = copier.textContent;
    var done = function () {
      copier.textContent = "Copied";
      setTimeout(function () { copier.textContent = label; }, 2000);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { document.execCommand("copy"); done(); });
    } else {
      document.execCommand("copy");
      done();
    }
  }

  document.addEventListener("click", function (event) {
    if (event.target.closest("[data-show-held]")) {
      showHeldRows();
      return;
    }
    // A log row whose details are loaded toggles them instead of fetching again.
    var logRow = event.target.closest("tr.log-row");
    if (logRow && !event.target.closest("a, [data-copy]")) {
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
      event.stopPropagation();
      copyText(copier);
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
    return Boolean(document.querySelector("#dialog-host dialog, .menu[popover]:popover-open"));
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
    // The answer of a live poll whose poller a redraw replaced meanwhile (a filter applied, a page turned) speaks
    // of rows that may be gone: the new poller asks again.
    if (detail.elt && detail.elt.hasAttribute("data-live-poll") && !detail.elt.isConnected) {
      detail.shouldSwap = false;
    }
    if (detail.shouldSwap) rememberFocus();
  });

  document.addEventListener("htmx:afterSettle", function (event) {
    restoreFocus();
    // A form refused outside a dialog (the API token's name) puts the focus on its first field with an error.
    var target = event.detail.target;
    var config = event.detail.requestConfig;
    var source = config && config.elt;
    if (target && source && source.matches && source.matches("form") && !(target.closest && target.closest("#dialog-host"))) {
      // An outerHTML swap replaced the target: look in its successor.
      var root = target.isConnected ? target : (target.id && document.getElementById(target.id)) || document;
      var invalid = firstInvalid(root);
      if (invalid) invalid.focus();
    }
  });

  // A new request by the administrator (polls have no triggering event) clears the errors of the last one; one
  // aimed at the dialog host while none is open remembers what opened it.
  document.addEventListener("htmx:beforeRequest", function (event) {
    var config = event.detail.requestConfig;
    if (!config || !config.triggeringEvent) return;
    document.querySelectorAll(".request-error").forEach(function (region) { region.replaceChildren(); });
    if (event.detail.target && event.detail.target.id === "dialog-host" && hostIsEmpty()) {
      var active = document.activeElement;
      remember(active && active !== document.body && event.detail.elt.contains(active) ? active : event.detail.elt);
    }
  });
  // A filter form leaves its unset fields out of the address: ?status=failed, not ?q=&type=&status=failed&range=.
  document.addEventListener("htmx:configRequest", function (event) {
    if (event.detail.verb !== "get" || !event.detail.elt.matches("form[data-drop-empty]")) return;
    var parameters = event.detail.parameters;
    var names = typeof parameters.keys === "function" ? Array.from(parameters.keys()) : Object.keys(parameters);
    names.forEach(function (name) {
      var value = typeof parameters.get === "function" ? parameters.get(name) : parameters[name];
      if (value === "") {
        if (typeof parameters.delete === "function") parameters.delete(name); else delete parameters[name];
      }
    });
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
