// Kirana console: the little the server-rendered pages need in the browser.
// Charts (Plotly, served by Kirana), confirmations, progress on long forms,
// the live audience estimate and the live event debugger. No build step.
"use strict";

function csrfToken() {
  const field = document.querySelector('input[name="csrf"]');
  return field ? field.value : "";
}

function drawCharts() {
  if (typeof Plotly === "undefined") return;
  document.querySelectorAll("script[data-chart]").forEach((node) => {
    const target = document.getElementById(node.dataset.chart);
    if (!target) return;
    const fig = JSON.parse(node.textContent);
    Plotly.newPlot(target, fig.data, fig.layout, {
      displaylogo: false, responsive: true, showLink: false, showSendToCloud: false,
      modeBarButtonsToRemove: ["sendDataToCloud"],
    });
  });
}

function wireForms() {
  document.querySelectorAll("form").forEach((form) => {
    form.addEventListener("submit", (event) => {
      const question = form.dataset.confirm;
      if (question && !window.confirm(question)) { event.preventDefault(); return; }
      if (form.dataset.busy) {
        const button = form.querySelector('button[type="submit"], button:not([type])');
        if (button) { button.disabled = true; button.textContent = form.dataset.busy; }
        form.setAttribute("aria-busy", "true");
      }
    });
  });
}

async function postJson(url, body) {
  const response = await fetch(url, {
    method: "POST", credentials: "same-origin",
    headers: {"Content-Type": "application/json", "X-CSRF-Token": csrfToken()},
    body: JSON.stringify(body),
  });
  return {ok: response.ok, body: await response.json()};
}

function liveEstimate() {
  const area = document.getElementById("definition");
  const out = document.getElementById("estimate");
  const preview = document.getElementById("preview");
  if (!area || !out) return;
  let timer = null;
  let asked = 0;
  const run = async () => {
    const mine = ++asked;
    let definition;
    try { definition = JSON.parse(area.value); } catch (err) {
      out.textContent = "Not valid JSON yet: " + err.message; out.className = "estimate bad"; return;
    }
    out.textContent = "Estimating…"; out.className = "estimate busy";
    const result = await postJson("/console/audiences/estimate", definition);
    if (mine !== asked) return; // a newer edit is on its way
    if (!result.ok) {
      out.textContent = result.body.code + ": " + result.body.message; out.className = "estimate bad";
      preview.replaceChildren();
      return;
    }
    out.textContent = result.body.size.toLocaleString() + " of " +
      result.body.profiles.toLocaleString() + " profiles";
    out.className = "estimate ok";
    preview.replaceChildren(...result.body.preview.map((member) => {
      const item = document.createElement("li");
      const link = document.createElement("a");
      link.href = member.url; link.textContent = member.label;
      item.append(link);
      return item;
    }));
  };
  area.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(run, 400); });
  run();
}

function liveDebugger() {
  const table = document.getElementById("live-events");
  if (!table) return;
  const body = table.querySelector("tbody");
  const state = document.getElementById("live-state");
  const toggle = document.getElementById("live-toggle");
  let after = table.dataset.after;
  let paused = false;
  toggle.addEventListener("click", () => {
    paused = !paused;
    toggle.textContent = paused ? "Resume" : "Pause";
    toggle.setAttribute("aria-pressed", String(paused));
  });
  const poll = async () => {
    if (!paused) {
      try {
        const response = await fetch(table.dataset.url + "?after=" + encodeURIComponent(after),
          {credentials: "same-origin"});
        if (response.ok) {
          const data = await response.json();
          after = data.after;
          for (const row of data.rows.slice().reverse()) body.prepend(eventRow(row));
          while (body.children.length > 200) body.lastElementChild.remove();
          state.textContent = "Live · last checked " + new Date().toLocaleTimeString();
        } else {
          state.textContent = "Stopped: " + response.status + " (sign in again?)";
          return;
        }
      } catch (err) {
        state.textContent = "Connection lost, retrying…";
      }
    }
    setTimeout(poll, 2000);
  };
  setTimeout(poll, 2000);
}

function eventRow(row) {
  const tr = document.createElement("tr");
  if (row.quarantined) tr.className = "quarantined";
  const cell = (text) => { const td = document.createElement("td"); td.textContent = text; return td; };
  tr.append(cell(row.received_at), cell(row.quarantined ? "quarantined" : row.type));
  const name = document.createElement("td");
  name.textContent = row.quarantined ? row.code + ": " + row.reason : (row.name || "");
  tr.append(name);
  const who = document.createElement("td");
  if (row.user_url) {
    const link = document.createElement("a"); link.href = row.user_url; link.textContent = row.user_label;
    who.append(link);
  } else { who.textContent = row.user_label || ""; }
  tr.append(who);
  const details = document.createElement("td");
  const pre = document.createElement("pre"); pre.textContent = row.raw;
  const box = document.createElement("details"); const summary = document.createElement("summary");
  summary.textContent = "JSON"; box.append(summary, pre); details.append(box);
  tr.append(details);
  return tr;
}

document.addEventListener("DOMContentLoaded", () => {
  drawCharts();
  wireForms();
  liveEstimate();
  liveDebugger();
});
