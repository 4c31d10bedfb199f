// The web view's script: keeps the runs list and a run's page up to date by polling the
// JSON the server gives, draws graphs with Mermaid, and fills the dispatch panel. Every
// value read from the store is set as text, never as markup.
"use strict";

const POLL_MS = 1500;

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

async function getJSON(url) {
  const response = await fetch(url, {credentials: "same-origin", cache: "no-store"});
  if (!response.ok) throw new Error(`${url}: ${response.status}`);
  return response.json();
}

function statusBadge(node, status) {
  node.textContent = status;
  node.className = `status s_${status}`;
}

function seconds(value) {
  return value === null || value === undefined ? "" : `${value.toFixed(1)} s`;
}

// -- the runs list ----------------------------------------------------------------------

function runsPage() {
  const table = document.getElementById("runs");
  const query = new URLSearchParams({status: table.dataset.status, age: table.dataset.age});
  async function refresh() {
    try {
      const runs = await getJSON(`/api/runs?${query}`);
      const body = table.querySelector("tbody");
      const rows = runs.map((r) => {
        const row = el("tr");
        row.dataset.run = r.run;
        const link = el("a", r.run);
        link.href = `/runs/${encodeURIComponent(r.run)}`;
        const first = el("td");
        first.append(link);
        const status = el("td");
        status.append(el("span", r.status, `status s_${r.status}`));
        row.append(first, status, el("td", r.created), el("td", seconds(r.duration)),
                   el("td", r.dispatches), el("td", r.command || "", "command"));
        return row;
      });
      if (rows.length === 0) {
        const row = el("tr", null, "none");
        const cell = el("td", "no runs");
        cell.colSpan = 6;
        row.append(cell);
        rows.push(row);
      }
      body.replaceChildren(...rows);
    } catch (error) {
      console.warn(error);
    }
  }
  setInterval(refresh, POLL_MS * 2);
}

// -- a run's page -----------------------------------------------------------------------

let drawn = 0;

async function draw(target, text, onNode) {
  drawn += 1;
  const {svg} = await mermaid.render(`graph-${drawn}`, text);
  target.innerHTML = svg;  // mermaid's own output, sanitised by it (securityLevel strict)
  if (!onNode) return;
  for (const node of target.querySelectorAll("g.node")) {
    const found = /(?:^|-)(d[0-9a-f]{16})(?:-|$)/.exec(node.id);
    if (!found) continue;
    node.dataset.dispatch = found[1].slice(1);
    node.classList.add("clickable");
    node.addEventListener("click", () => onNode(found[1].slice(1)));
  }
}

function runPage() {
  mermaid.initialize({startOnLoad: false, securityLevel: "strict", theme: "neutral",
                      flowchart: {htmlLabels: false}, maxEdges: 2000});
  const summary = document.getElementById("summary");
  const run = summary.dataset.run;
  let version = null;
  let ids = [];
  let workflowDrawn = false;

  function fullId(prefix) {
    return ids.find((id) => id.startsWith(prefix)) || prefix;
  }

  async function showDispatch(prefix) {
    const id = fullId(prefix);
    const d = await getJSON(`/api/runs/${encodeURIComponent(run)}/dispatches/${id}`);
    const panel = document.getElementById("dispatch");
    panel.hidden = false;
    panel.dataset.dispatch = d.id;
    document.getElementById("d-id").textContent = d.id;
    statusBadge(document.getElementById("d-status"), d.status);
    document.getElementById("d-node").textContent = `${d.node} (${d.task})`;
    document.getElementById("d-inputs").textContent = JSON.stringify(d.inputs, null, 2);
    document.getElementById("d-configs").textContent = JSON.stringify(d.configs, null, 2);
    document.getElementById("d-value").textContent =
      d.status === "done" ? JSON.stringify(d.value, null, 2) : "";
    document.getElementById("d-reused").textContent = d.reused_from || "";
    const attempts = d.history.map((a) => {
      const item = el("li");
      const head = el("div", `attempt ${a.n} (session ${a.session}): ${a.status}` +
                      (a.finished ? ` at ${a.finished}` : "") +
                      (a.host ? ` on ${a.host} (pid ${a.pid})` : "") +
                      (a.error ? ` — ${a.error_type}: ${a.error}` : ""));
      item.append(head);
      if (a.traceback) item.append(el("pre", a.traceback, "traceback"));
      return item;
    });
    document.getElementById("d-attempts").replaceChildren(...attempts);
    const logs = d.logs.map((entry) => {
      const box = el("div", null, "log");
      box.append(el("div", `attempt ${entry.attempt}` +
                    (entry.dropped ? ` (${entry.dropped} characters left out)` : ""),
                    "log-head"));
      box.append(el("pre", entry.text, "log-text"));
      return box;
    });
    if (logs.length === 0) logs.push(el("p", "nothing printed or logged", "note"));
    document.getElementById("d-logs").replaceChildren(...logs);
    panel.scrollIntoView({block: "nearest"});
  }

  function fill(state) {
    statusBadge(document.getElementById("run-status"), state.status);
    document.getElementById("run-duration").textContent =
      state.duration === null ? "" : `ran ${seconds(state.duration)}`;
    const counts = Object.entries(state.counts).map(([k, v]) => `${k} ${v}`).join(", ");
    document.getElementById("run-counts").textContent = counts || "none";
    document.getElementById("graph-note").textContent = state.drawn < state.total ?
      `The graph shows the first ${state.drawn} of ${state.total}; the table lists them all.` : "";
    ids = state.dispatches.map((d) => d.id);
    const rows = state.dispatches.map((d) => {
      const row = el("tr", null, "clickable");
      row.dataset.dispatch = d.id;
      const status = el("td");
      status.append(el("span", d.status, `status s_${d.status}`));
      row.append(el("td", d.id.slice(0, 12), "mono"), el("td", d.node), el("td", d.task),
                 status, el("td", d.attempts));
      row.addEventListener("click", () => showDispatch(d.id));
      return row;
    });
    document.querySelector("#dispatches tbody").replaceChildren(...rows);
    const events = state.report.events.map((e) => el("li", `${e.at}  ${e.text}`));
    document.getElementById("timeline").replaceChildren(...events);
  }

  async function refresh() {
    try {
      const state = await getJSON(`/api/runs/${encodeURIComponent(run)}`);
      if (!workflowDrawn) {
        workflowDrawn = true;
        await draw(document.getElementById("workflow"), state.workflow, null);
      }
      if (state.version !== version) {
        version = state.version;
        summary.dataset.version = version;
        fill(state);
        await draw(document.getElementById("dag"), state.graph, showDispatch);
        const open = document.getElementById("dispatch");
        if (!open.hidden && open.dataset.dispatch) await showDispatch(open.dataset.dispatch);
      }
    } catch (error) {
      console.warn(error);
    }
  }

  const job = document.getElementById("job");
  async function followJob() {
    try {
      const j = await getJSON(`/api/jobs/${job.dataset.job}`);
      document.getElementById("job-state").textContent =
        j.state === "running" ? "running" : `exited ${j.code}`;
      document.getElementById("job-output").textContent = j.output.join("\n");
      if (j.state === "running") setTimeout(followJob, POLL_MS / 2);
    } catch (error) {
      console.warn(error);
    }
  }

  refresh();
  setInterval(refresh, POLL_MS);
  if (job) followJob();
}

document.addEventListener("DOMContentLoaded", () => {
  const page = document.body.dataset.page;
  if (page === "runs") runsPage();
  if (page === "run") runPage();
});
