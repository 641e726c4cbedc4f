// Small behaviours around HTMX: modal dialogs, copy buttons and visible request errors.
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
    if (dialog.closest("#dialog-host")) {
      dialog.remove();
    } else {
      window.location.assign(document.querySelector("nav.breadcrumb a") ? document.querySelector("nav.breadcrumb a").href : "/");
    }
  }

  function showRequestError(message) {
    var region = document.getElementById("request-error");
    if (!region) return;
    region.textContent = message;
    region.hidden = false;
    var openDialog = document.querySelector("dialog[open]");
    if (openDialog) {
      var inDialog = openDialog.querySelector(".request-error");
      if (!inDialog) {
        inDialog = document.createElement("div");
        inDialog.className = "alert alert-error request-error";
        inDialog.setAttribute("role", "alert");
        openDialog.insertBefore(inDialog, openDialog.children[1] || null);
      }
      inDialog.textContent = message;
      inDialog.scrollIntoView({ block: "nearest" });
    }
  }

  function clearRequestError() {
    var region = document.getElementById("request-error");
    if (region) region.hidden = true;
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
    var rows = document.getElementById("log-rows");
    if (rows && rows.querySelector(".log-row")) {
      var empty = rows.querySelector(".empty-row");
      if (empty) empty.remove();
    }
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
    // Close open action menus when clicking elsewhere or choosing one of their items.
    var chosen = event.target.closest("details.menu a, details.menu button");
    document.querySelectorAll("details.menu[open]").forEach(function (menu) {
      if (!menu.contains(event.target) || (chosen && menu.contains(chosen))) menu.removeAttribute("open");
    });
  });

  document.addEventListener("cancel", function (event) {
    // Escape on a modal: remove it from the host so it does not linger hidden.
    if (event.target.matches("#dialog-host dialog")) {
      event.preventDefault();
      closeDialog(event.target);
    }
  }, true);

  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    document.querySelectorAll("details.menu[open]").forEach(function (menu) {
      menu.removeAttribute("open");
      menu.querySelector("summary").focus();
    });
  });

  function overlayOpen() {
    return Boolean(document.querySelector("#dialog-host dialog, details.menu[open]"));
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
    // A webhook row opens its edit dialog, unless the click was on one of its own links, buttons or forms.
    if (source.hasAttribute("data-row-click") && trigger && trigger.target.closest &&
        trigger.target.closest("a, button, summary, details, form, input, label")) {
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

  // A live poll already in flight when the administrator opened a menu or dialog must not redraw the
  // table under it (that snaps the menu shut); the next poll, once it is closed, brings the change.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var source = event.detail.elt;
    if (source && source.id === "webhooks-live" && overlayOpen()) {
      event.detail.shouldSwap = false;
    }
  });

  document.addEventListener("htmx:beforeRequest", clearRequestError);
  document.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail.xhr;
    var explanation = "";
    var match = /<main[\s\S]*?<p>([^<]+)<\/p>/.exec(xhr.responseText || "");
    if (match) explanation = " " + match[1].replace(/&#39;/g, "'").replace(/&quot;|&#34;/g, '"').replace(/&amp;/g, "&");
    var reason;
    if (xhr.status === 400 && /CSRF/i.test(xhr.responseText)) {
      reason = "Your session expired. Reload the page and try again.";
    } else if (xhr.status === 404) {
      reason = "The request failed (HTTP 404):" + (explanation || " that item no longer exists.") + " Reload the page to see the current list.";
    } else {
      reason = "The request failed (HTTP " + xhr.status + " " + xhr.statusText + ")." + explanation + " Try again.";
    }
    showRequestError(reason);
  });
  document.addEventListener("htmx:sendError", function () {
    showRequestError("The server could not be reached. Check your connection and try again.");
  });
})();
