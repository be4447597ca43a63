// Ticket Console staff UI: keep sync badges current while a sync is under way, and show a
// ticket form's provider fields when the account changes. No dependencies.
(function () {
  "use strict";
  var BUSY = ["pending", "sending"];
  var POLL_MS = 2000;
  var edited = false;  // never reload a page under someone's typing

  document.addEventListener("input", function () { edited = true; });

  function badges() {
    return Array.prototype.slice.call(document.querySelectorAll("[data-sync-id]"));
  }

  function updateRemote(ticket) {
    var cell = document.querySelector('[data-remote-for="' + ticket.id + '"]');
    if (!cell || !ticket.remote_number) return;
    cell.textContent = "";
    if (ticket.remote_url) {
      var link = document.createElement("a");
      link.href = ticket.remote_url;
      link.target = "_blank";
      link.rel = "noopener noreferrer";
      link.textContent = ticket.remote_number;
      cell.appendChild(link);
    } else {
      cell.textContent = ticket.remote_number;
    }
  }

  // A detail page shows the outcome by reloading itself, unless someone is typing on it.
  function settled(badge) {
    if (!badge.dataset.reloadOnSettle) return false;
    if (!edited) { window.location.reload(); return true; }
    var notice = document.getElementById("sync-settled");
    if (notice) notice.classList.remove("d-none");
    return false;
  }

  function apply(tickets) {
    tickets.forEach(function (ticket) {
      var badge = document.querySelector('[data-sync-id="' + ticket.id + '"]');
      if (!badge) return;
      if (badge.dataset.repliesBusy && !ticket.replies_busy && !ticket.busy) {
        delete badge.dataset.repliesBusy;
        settled(badge);
        return;
      }
      if (badge.dataset.syncState === ticket.sync_state) return;
      badge.dataset.syncState = ticket.sync_state;
      badge.className = "badge " + ticket.badge_class;
      badge.textContent = ticket.label;
      if (!ticket.busy && !ticket.replies_busy && settled(badge)) return;
      var sentence = document.getElementById("sync-sentence");
      if (sentence && badge.dataset.reloadOnSettle) sentence.textContent = ticket.sentence;
      updateRemote(ticket);
    });
  }

  function poll() {
    var url = document.body.dataset.syncUrl;
    var busy = badges().filter(function (b) {
      return BUSY.indexOf(b.dataset.syncState) !== -1 || b.dataset.repliesBusy;
    });
    if (!url || !busy.length) return;
    var query = busy.map(function (b) { return "id=" + encodeURIComponent(b.dataset.syncId); }).join("&");
    fetch(url + "?" + query, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : { tickets: [] }; })
      .then(function (data) { apply(data.tickets || []); })
      .catch(function () { /* a missed poll is retried on the next tick */ })
      .then(function () { window.setTimeout(poll, POLL_MS); });
  }

  // Choosing an account swaps in that account's own fields without leaving the page, so
  // focus and everything typed stay put. Without JavaScript the button does the same.
  function watchAccount() {
    var select = document.getElementById("id_account");
    var button = document.getElementById("switch-account");
    if (!select || !button || !window.fetch || !window.DOMParser) return;
    button.classList.add("visually-hidden-focusable");
    select.addEventListener("change", function () {
      var data = new FormData(select.form);
      data.append(button.name, button.value);
      fetch(select.form.action, { method: "POST", body: data, credentials: "same-origin" })
        .then(function (response) {
          if (!response.ok) throw new Error("HTTP " + response.status);
          return response.text();
        })
        .then(function (html) {
          var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("provider-slot");
          var slot = document.getElementById("provider-slot");
          if (!fresh || !slot) throw new Error("no provider fields in the answer");
          slot.replaceWith(fresh);
        })
        .catch(function () { button.click(); });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    watchAccount();
    window.setTimeout(poll, POLL_MS);
  });
}());
