/* threadline console: the little JavaScript of our own (no inline script anywhere; see the CSP).
   - every htmx request carries the session's CSRF token, read from <meta name="csrf-token">;
   - [data-toggle="ID"] buttons open and close the element ID (the sidebar on small screens);
   - a click outside an open sidebar, or Escape, closes it. */
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  document.addEventListener("htmx:configRequest", function (event) {
    var token = csrfToken();
    if (token) {
      event.detail.headers["X-CSRF-Token"] = token;
    }
  });

  function setOpen(button, target, open) {
    target.classList.toggle("is-open", open);
    button.setAttribute("aria-expanded", open ? "true" : "false");
    document.body.classList.toggle("has-overlay", open);
  }

  function openToggles() {
    return Array.prototype.filter.call(document.querySelectorAll("[data-toggle]"), function (button) {
      var target = document.getElementById(button.getAttribute("data-toggle"));
      return target && target.classList.contains("is-open");
    });
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-toggle]");
    if (button) {
      var target = document.getElementById(button.getAttribute("data-toggle"));
      if (target) {
        setOpen(button, target, !target.classList.contains("is-open"));
      }
      return;
    }
    openToggles().forEach(function (open) {
      var target = document.getElementById(open.getAttribute("data-toggle"));
      if (!target.contains(event.target)) {
        setOpen(open, target, false);
      }
    });
  });

  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") {
      openToggles().forEach(function (open) {
        setOpen(open, document.getElementById(open.getAttribute("data-toggle")), false);
      });
    }
  });
})();

/* ================================================================== inbox list, search, agents (console.inbox)
   - the live refresh (#inbox-live, on "sse:inbox") asks for as many rows as the list shows, so that an operator
     who loaded more pages keeps them (up to 200; past that the list starts over at 200 rows and "load more");
     a hidden tab skips it and refreshes once shown again; a reconnected stream refreshes once;
   - the row of the thread open in #thread-detail (the address /console/threads/ID) is marked;
   - times show in the browser's time zone (the server writes UTC);
   - choosing a view in the sidebar on a small screen closes the sidebar;
   - on the agents page, the version the address names (#version-ID) is opened and marked. */
(function () {
  "use strict";

  var PAGE = 50;
  var MAX_ROWS = 200;

  var missedWhileHidden = false;
  var streamOpened = 0;

  function refreshList() {
    var live = document.getElementById("inbox-live");
    if (live && window.htmx) {
      window.htmx.trigger(live, "sse:inbox");
    }
  }

  document.addEventListener("htmx:configRequest", function (event) {
    var elt = event.detail.elt;
    if (!elt || !elt.hasAttribute || !elt.hasAttribute("data-inbox-refresh")) {
      return;
    }
    if (document.hidden) {
      // A tab nobody looks at asks for nothing; it catches up once shown again.
      missedWhileHidden = true;
      event.preventDefault();
      return;
    }
    var shown = document.querySelectorAll("#thread-list .thread-row:not(.result-row)").length;
    if (shown > PAGE) {
      event.detail.parameters.limit = String(Math.min(shown, MAX_ROWS));
    }
  });

  document.addEventListener("visibilitychange", function () {
    if (!document.hidden && missedWhileHidden) {
      missedWhileHidden = false;
      refreshList();
    }
  });

  // The stream reconnected (the server restarted, or ended it after its longest duration): what changed in
  // between sent no event, so look once.
  document.addEventListener("htmx:sseOpen", function (event) {
    if (!event.target || !event.target.querySelector || !event.target.querySelector("#inbox-live")) {
      return;
    }
    streamOpened += 1;
    if (streamOpened > 1) {
      refreshList();
    }
  });

  function openThreadId() {
    var match = /^\/console\/threads\/([^\/?#]+)/.exec(window.location.pathname);
    return match ? decodeURIComponent(match[1]) : null;
  }

  function markOpen(id) {
    var open = id === undefined ? openThreadId() : id;
    Array.prototype.forEach.call(document.querySelectorAll(".thread-row[data-thread-id]"), function (row) {
      var active = open !== null && row.getAttribute("data-thread-id") === open;
      row.classList.toggle("is-active", active);
      if (active) {
        row.setAttribute("aria-current", "true");
      } else {
        row.removeAttribute("aria-current");
      }
    });
  }

  document.addEventListener("click", function (event) {
    var row = event.target.closest && event.target.closest(".thread-row[data-thread-id]");
    if (row) {
      markOpen(row.getAttribute("data-thread-id"));
    }
  });

  function pad(n) {
    return n < 10 ? "0" + n : String(n);
  }

  function localTime(node) {
    var at = new Date(node.getAttribute("datetime"));
    if (isNaN(at.getTime())) {
      return;
    }
    var now = new Date();
    var text;
    if (node.getAttribute("data-local-time") === "long") {
      text = at.toLocaleDateString(undefined, { year: "numeric", month: "short", day: "numeric" }) + " " +
        pad(at.getHours()) + ":" + pad(at.getMinutes());
    } else if (at.toDateString() === now.toDateString()) {
      text = pad(at.getHours()) + ":" + pad(at.getMinutes());
    } else if (at.getFullYear() === now.getFullYear()) {
      text = at.toLocaleDateString(undefined, { month: "short", day: "numeric" });
    } else {
      text = at.toLocaleDateString(undefined, { year: "numeric", month: "short", day: "numeric" });
    }
    node.textContent = text;
    node.setAttribute("title", at.toLocaleString());
  }

  function localTimes(root) {
    if (root && root.querySelectorAll) {
      Array.prototype.forEach.call(root.querySelectorAll("time[data-local-time]"), localTime);
    }
  }

  function openVersion() {
    var id = window.location.hash.slice(1);
    var target = id ? document.getElementById(id) : null;
    Array.prototype.forEach.call(document.querySelectorAll(".version.is-target"), function (node) {
      node.classList.remove("is-target");
    });
    if (target && target.classList.contains("version")) {
      target.classList.add("is-target");
      var details = target.querySelector("details");
      if (details) {
        details.open = true;
      }
    }
  }

  document.addEventListener("htmx:load", function (event) {
    localTimes(event.detail.elt);
  });
  document.addEventListener("htmx:afterSettle", function () {
    markOpen();
  });
  document.addEventListener("htmx:pushedIntoHistory", function () {
    markOpen();
  });
  document.addEventListener("htmx:historyRestore", function () {
    markOpen();
    localTimes(document);
  });
  window.addEventListener("popstate", function () {
    markOpen();
  });
  window.addEventListener("hashchange", openVersion);

  document.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail.elt;
    var sidebar = document.getElementById("sidebar");
    if (elt && elt.classList && elt.classList.contains("view") && sidebar && sidebar.classList.contains("is-open")) {
      var toggle = document.querySelector('[data-toggle="sidebar"]');
      if (toggle) {
        toggle.click();
      }
    }
  });

  function ready() {
    localTimes(document);
    markOpen();
    openVersion();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", ready);
  } else {
    ready();
  }
})();
/* ================================================================== end of inbox list, search, agents */

/* ================================================================== thread view (console/thread.py, thread_live.py)
   - opening a thread: the transcript scrolls to its newest message (or to the message a link names, marked), the
     inbox shows the thread pane on small screens, times show in the browser's time zone with a line per day;
   - the live stream (htmx's SSE extension) appends messages, streams the agent's text, updates statuses; a
     message already shown (sent from here, or rendered just before the stream began) is replaced, never doubled;
     the view follows new messages while the operator is at the bottom, and stays put when they scrolled up;
   - scrolling up loads the page before (the "older" marker) and keeps what was on screen in place;
   - the composer sends on Enter (Shift+Enter: a new line), grows with its text, and empties once sent;
   - a refused action or a lost connection says so in a toast; open menus close on a click elsewhere or once
     their action is done; a stream that says the session ended goes to the sign-in page. */
(function () {
  "use strict";

  var NEAR_BOTTOM = 160;
  var follow = new WeakMap(); // transcript -> whether it was at the bottom before an update
  var keep = null; // {transcript, distance from its bottom} to keep across the older page being swapped in

  function threadOf(node) {
    return node && node.closest ? node.closest(".thread") : null;
  }

  function transcriptOf(node) {
    var thread = threadOf(node);
    return thread ? thread.querySelector(".transcript") : null;
  }

  function nearBottom(t) {
    return t.scrollHeight - t.scrollTop - t.clientHeight < NEAR_BOTTOM;
  }

  function toBottom(t) {
    t.scrollTop = t.scrollHeight;
  }

  function pad(n) {
    return n < 10 ? "0" + n : String(n);
  }

  function localize(root) {
    if (!root || !root.querySelectorAll) {
      return;
    }
    var nodes = Array.prototype.slice.call(root.querySelectorAll("time[data-local]"));
    if (root.matches && root.matches("time[data-local]")) {
      nodes.push(root);
    }
    nodes.forEach(function (node) {
      var at = new Date(node.getAttribute("datetime"));
      if (isNaN(at.getTime())) {
        return;
      }
      node.textContent = node.getAttribute("data-local") === "date"
        ? at.toLocaleDateString(undefined, { year: "numeric", month: "short", day: "numeric" })
        : pad(at.getHours()) + ":" + pad(at.getMinutes());
      node.setAttribute("title", at.toLocaleString());
    });
  }

  function dayLabel(at) {
    var today = new Date();
    var yesterday = new Date(today.getFullYear(), today.getMonth(), today.getDate() - 1);
    if (at.toDateString() === today.toDateString()) {
      return "Today";
    }
    if (at.toDateString() === yesterday.toDateString()) {
      return "Yesterday";
    }
    var options = { weekday: "long", month: "long", day: "numeric" };
    if (at.getFullYear() !== today.getFullYear()) {
      options.year = "numeric";
    }
    return at.toLocaleDateString(undefined, options);
  }

  var GROUP_MS = 5 * 60 * 1000;

  // A line above the first message of each day; a message right after another of the same author (within five
  // minutes) joins its group (no name or avatar of its own).
  function separateDays(msgs) {
    if (!msgs) {
      return;
    }
    Array.prototype.forEach.call(msgs.querySelectorAll(":scope > .day-sep"), function (sep) {
      sep.remove();
    });
    var previous = null;
    var last = null;
    Array.prototype.forEach.call(msgs.querySelectorAll(":scope > .msg[data-at]"), function (msg) {
      var at = new Date(msg.getAttribute("data-at"));
      if (isNaN(at.getTime())) {
        return;
      }
      var day = at.toDateString();
      var newDay = day !== previous;
      if (newDay) {
        var sep = document.createElement("div");
        sep.className = "day-sep";
        sep.setAttribute("role", "separator");
        sep.textContent = dayLabel(at);
        msg.parentNode.insertBefore(sep, msg);
        previous = day;
      }
      var author = msg.getAttribute("data-author");
      var joins = !newDay && last !== null && last.author === author && at - last.at < GROUP_MS &&
        !/^(system|tool):/.test(author || "");
      msg.classList.toggle("is-cont", joins);
      last = { author: author, at: at };
    });
  }

  function syncOpen() {
    var inbox = document.querySelector(".inbox");
    if (inbox) {
      inbox.classList.toggle("has-thread", !!document.querySelector("#thread-detail .thread"));
    }
  }

  function setup(thread) {
    if (!thread || thread.hasAttribute("data-ready")) {
      return;
    }
    thread.setAttribute("data-ready", "");
    var t = thread.querySelector(".transcript");
    localize(thread);
    separateDays(thread.querySelector(".msgs"));
    syncOpen();
    if (!t) {
      return;
    }
    var target = t.getAttribute("data-target") ? document.getElementById(t.getAttribute("data-target")) : null;
    if (target) {
      target.scrollIntoView({ block: "center" });
      target.classList.add("is-flash");
    } else {
      toBottom(t);
    }
  }

  // The ids of the messages in an HTML fragment (not its out-of-band pieces).
  function messageIds(html) {
    var template = document.createElement("template");
    template.innerHTML = html;
    return Array.prototype.map.call(template.content.querySelectorAll(".msg[id]:not([hx-swap-oob])"), function (m) {
      return m.id;
    });
  }

  // A message shown already gives way to the one arriving (the same message, maybe newer).
  function dropShown(html) {
    messageIds(html).forEach(function (id) {
      var shown = document.getElementById(id);
      if (shown && !shown.closest("template")) {
        shown.remove();
      }
    });
  }

  // Whether the live stream is up, on the thread (data-live: open, closed): for the eye, and for tests.
  document.addEventListener("htmx:sseOpen", function (event) {
    var thread = threadOf(event.target);
    if (thread) {
      thread.setAttribute("data-live", "open");
    }
  });

  document.addEventListener("htmx:sseError", function (event) {
    var thread = threadOf(event.target);
    if (thread) {
      thread.setAttribute("data-live", "closed");
    }
  });

  // Out-of-band updates whose element is not on the page (a status of a message in a page not loaded) are left
  // out: htmx would report each as an error.
  function swapPresent(elt, html) {
    var template = document.createElement("template");
    template.innerHTML = html;
    var present = Array.prototype.filter.call(template.content.children, function (node) {
      return node.id && document.getElementById(node.id);
    });
    if (present.length) {
      var kept = present.map(function (node) {
        return node.outerHTML;
      }).join("");
      htmx.swap(elt, kept, { swapStyle: "none", swapDelay: 0, settleDelay: 0 });
    }
  }

  document.addEventListener("htmx:sseBeforeMessage", function (event) {
    var elt = event.target;
    var t = transcriptOf(elt);
    if (!t) {
      return;
    }
    follow.set(t, nearBottom(t));
    if (elt.hasAttribute("data-oob-only") && event.detail && typeof event.detail.data === "string") {
      event.preventDefault();
      swapPresent(elt, event.detail.data);
      if (follow.get(t)) {
        toBottom(t);
      }
      return;
    }
    if (elt.hasAttribute("data-dedupe") && event.detail && typeof event.detail.data === "string") {
      dropShown(event.detail.data);
    }
  });

  document.addEventListener("htmx:sseMessage", function (event) {
    var elt = event.target;
    if (event.detail && event.detail.type === "tl-signed-out") {
      window.location.assign(elt.getAttribute("data-signed-out") || "/console/sign-in");
      return;
    }
    var t = transcriptOf(elt);
    if (!t) {
      return;
    }
    if (elt.classList && elt.classList.contains("msgs")) {
      separateDays(elt);
    }
    if (follow.get(t)) {
      toBottom(t);
    }
  });

  document.addEventListener("htmx:beforeSwap", function (event) {
    var elt = event.detail.elt;
    var t = transcriptOf(elt);
    if (!t || !event.detail.shouldSwap) {
      return;
    }
    if (elt.hasAttribute && elt.hasAttribute("data-older")) {
      keep = { transcript: t, distance: t.scrollHeight - t.scrollTop };
    } else if (elt.hasAttribute && elt.hasAttribute("data-composer")) {
      dropShown(event.detail.serverResponse || "");
    }
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    // The older page replaced its marker (detached now): the transcript is the one noted before the swap. Put
    // back what was on screen before the new marker is watched (htmx does that as the swap settles).
    if (keep !== null) {
      var kept = keep;
      keep = null;
      if (kept.transcript.isConnected) {
        separateDays(kept.transcript.querySelector(".msgs"));
        kept.transcript.scrollTop = kept.transcript.scrollHeight - kept.distance;
      }
      return;
    }
    var elt = event.detail.elt;
    if (elt && elt.hasAttribute && elt.hasAttribute("data-composer")) {
      var t = transcriptOf(elt);
      if (t) {
        separateDays(t.querySelector(".msgs"));
        toBottom(t);
      }
    }
  });

  document.addEventListener("htmx:load", function (event) {
    var elt = event.detail.elt;
    if (!elt || !elt.matches) {
      return;
    }
    if (elt.matches(".thread")) {
      setup(elt);
    } else if (threadOf(elt)) {
      localize(elt);
    }
  });

  // The header and the panel are redrawn when the thread changes (here or in another console): what the operator
  // had open stays open (the end user's panel, a menu).
  document.addEventListener("htmx:oobBeforeSwap", function (event) {
    var target = event.detail.target;
    var fresh = event.detail.fragment && event.detail.fragment.firstElementChild;
    if (!target || !fresh || !threadOf(target)) {
      return;
    }
    if (target.id === "thread-side" && target.classList.contains("is-open")) {
      fresh.classList.add("is-open");
    }
    if (target.id === "thread-head") {
      Array.prototype.forEach.call(target.querySelectorAll("details.menu[open][id]"), function (menu) {
        var again = fresh.querySelector("#" + CSS.escape(menu.id));
        if (again) {
          again.open = true;
        }
      });
      var side = document.getElementById("thread-side");
      var toggle = fresh.querySelector('[data-toggle="thread-side"]');
      if (toggle && side && side.classList.contains("is-open")) {
        toggle.setAttribute("aria-expanded", "true");
      }
    }
  });

  // ---------------------------------------------------------------- the composer

  function autosize(input) {
    input.style.height = "auto";
    input.style.height = Math.min(input.scrollHeight, 220) + "px";
  }

  document.addEventListener("keydown", function (event) {
    var input = event.target;
    if (!input.matches || !input.matches("[data-composer-input]") || event.key !== "Enter") {
      return;
    }
    if (event.shiftKey || event.altKey || event.isComposing) {
      return;
    }
    event.preventDefault();
    if (input.value.trim() && input.form && !input.form.classList.contains("htmx-request")) {
      input.form.requestSubmit();
    }
  });

  document.addEventListener("input", function (event) {
    if (event.target.matches && event.target.matches("[data-composer-input]")) {
      autosize(event.target);
    }
  });

  document.addEventListener("htmx:afterRequest", function (event) {
    var elt = event.detail.elt;
    if (!event.detail.successful || !elt || !elt.closest) {
      return;
    }
    if (elt.hasAttribute("data-composer")) {
      elt.reset();
      var input = elt.querySelector("[data-composer-input]");
      if (input) {
        autosize(input);
        input.focus();
      }
    }
    var menu = elt.closest("details.menu");
    if (menu) {
      menu.open = false;
    }
  });

  // ---------------------------------------------------------------- menus, errors

  document.addEventListener("click", function (event) {
    Array.prototype.forEach.call(document.querySelectorAll(".thread details.menu[open]"), function (menu) {
      if (!menu.contains(event.target)) {
        menu.open = false;
      }
    });
  });

  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") {
      Array.prototype.forEach.call(document.querySelectorAll(".thread details.menu[open]"), function (menu) {
        menu.open = false;
      });
    }
  });

  var toastTimer = null;

  function toast(text) {
    var node = document.querySelector(".tl-toast");
    if (!node) {
      node = document.createElement("div");
      node.className = "tl-toast";
      node.setAttribute("role", "alert");
      document.body.appendChild(node);
    }
    node.textContent = text;
    node.hidden = false;
    window.clearTimeout(toastTimer);
    toastTimer = window.setTimeout(function () {
      node.hidden = true;
    }, 5000);
  }

  // The error page's words (its title and message), for the toast.
  function errorText(xhr) {
    var status = xhr ? xhr.status : 0;
    if (status === 401) {
      return "Your session ended: sign in again.";
    }
    try {
      var doc = new DOMParser().parseFromString(xhr.responseText || "", "text/html");
      var lead = doc.querySelector(".auth-lead");
      if (lead && lead.textContent.trim()) {
        var text = lead.textContent.trim();
        return text.charAt(0).toUpperCase() + text.slice(1);
      }
    } catch (e) {
      /* not HTML: fall through */
    }
    return "That did not work (" + status + "). Try again.";
  }

  document.addEventListener("htmx:responseError", function (event) {
    if (threadOf(event.detail.elt) || (event.detail.target && event.detail.target.id === "thread-detail")) {
      toast(errorText(event.detail.xhr));
    }
  });

  document.addEventListener("htmx:sendError", function (event) {
    if (threadOf(event.detail.elt) || (event.detail.target && event.detail.target.id === "thread-detail")) {
      toast("The server could not be reached. Check the connection and try again.");
    }
  });

  function ready() {
    Array.prototype.forEach.call(document.querySelectorAll(".thread"), setup);
    syncOpen();
  }

  // Deferred: the document is parsed. Done before htmx processes it, so the transcript is at its bottom before
  // the "older" marker is watched.
  ready();
})();
/* ================================================================== end of thread view */
