// The dashboard's only script: a confirmation dialog that asks for a
// reason before drain, resume or kill, and live event tables fed by
// server-sent events. Every page works without it. Everything that comes
// from the server is inserted as text, never as HTML.
"use strict";

(function () {
  const dialog = document.getElementById("confirm");

  // ask shows the confirmation dialog for an action form and resolves to
  // the reason, or null when cancelled.
  function ask(form) {
    const action = form.dataset.action;
    document.getElementById("confirm-title").textContent = action.charAt(0).toUpperCase() + action.slice(1) + " worker?";
    document.getElementById("confirm-text").textContent =
      action + " " + form.dataset.instance + " in namespace " + form.dataset.namespace + ".";
    document.getElementById("confirm-error").textContent = "";
    const reason = document.getElementById("confirm-reason");
    reason.value = "";
    return new Promise(function (resolve) {
      dialog.addEventListener("close", function onClose() {
        dialog.removeEventListener("close", onClose);
        resolve(dialog.returnValue === "ok" ? reason.value : null);
      });
      dialog.showModal();
      reason.focus();
    });
  }

  async function act(form) {
    const reason = await ask(form);
    if (reason === null) {
      return;
    }
    const res = await fetch(form.action, {
      method: "POST",
      headers: { "Content-Type": "application/json", "Accept": "application/json" },
      body: JSON.stringify({ reason: reason }),
      credentials: "same-origin",
    });
    const body = await res.json().catch(function () { return {}; });
    if (!res.ok) {
      alertText((body.message || res.statusText) + " (" + res.status + ")");
      return;
    }
    const row = form.closest("tr.worker");
    if (row) {
      const state = row.querySelector(".state");
      if (state) {
        state.textContent = body.outcome === "drain_requested" ? "draining" : body.outcome;
      }
    }
    form.querySelector("button").disabled = true;
  }

  function alertText(text) {
    let box = document.getElementById("flash");
    if (!box) {
      box = document.createElement("p");
      box.id = "flash";
      box.className = "error";
      document.querySelector("main").prepend(box);
    }
    box.textContent = text;
  }

  if (dialog && typeof dialog.showModal === "function") {
    document.addEventListener("submit", function (ev) {
      const form = ev.target;
      if (form.classList && form.classList.contains("action")) {
        ev.preventDefault();
        act(form).catch(function (err) { alertText(String(err)); });
      }
    });
  }

  function cell(text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) {
      td.className = className;
    }
    return td;
  }

  // A live table prepends each new event; it keeps at most 200 rows.
  document.querySelectorAll("table.live[data-stream]").forEach(function (table) {
    if (typeof EventSource !== "function") {
      return;
    }
    const prefix = document.body.dataset.prefix || "";
    let url = table.dataset.stream;
    url += (url.indexOf("?") < 0 ? "?" : "&") + "after=" + encodeURIComponent(table.dataset.after || "0");
    const source = new EventSource(url);
    const tbody = table.tBodies[0];
    source.addEventListener("worker_event", function (msg) {
      const e = JSON.parse(msg.data);
      const tr = document.createElement("tr");
      tr.dataset.kind = e.kind;
      tr.dataset.id = String(e.id);
      tr.className = "new";
      tr.append(cell(String(e.id)), cell("just now"), cell(e.namespace));
      const inst = document.createElement("td");
      const a = document.createElement("a");
      a.href = prefix + "/workers/" + seg(e.namespace) + "/" + seg(e.worker_instance_id);
      a.textContent = e.worker_instance_id;
      inst.append(a);
      tr.append(inst, cell(e.kind, "kind k-" + e.kind), cell(e.reason));
      tr.title = e.at;
      tbody.prepend(tr);
      while (tbody.rows.length > 200) {
        tbody.deleteRow(-1);
      }
    });
  });

  // seg escapes a path segment as the server does.
  function seg(s) {
    if (s === "." || s === "..") {
      return s.replace(/\./g, "%2E");
    }
    return encodeURIComponent(s);
  }
})();
