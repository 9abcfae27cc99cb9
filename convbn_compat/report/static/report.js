"use strict";
const DATA = JSON.parse(document.getElementById("report-data").textContent);
const $ = (id) => document.getElementById(id);
const panel = $("panel");
let opener = null;

function text(tag, value, cls) {
  const el = document.createElement(tag);
  el.textContent = value;
  if (cls) el.className = cls;
  return el;
}

function commandBlock(label, command) {
  const box = document.createElement("div");
  box.append(text("h3", label));
  const row = document.createElement("div");
  row.className = "cmd";
  const pre = text("pre", command);
  const copy = text("button", "copy");
  copy.type = "button";
  copy.onclick = () => navigator.clipboard && navigator.clipboard.writeText(command);
  row.append(pre, copy);
  box.append(row);
  return box;
}

const show = (value) => (value === null || value === undefined ? "-" : String(value));

function openPanel(button) {
  const td = button.parentElement;
  const caseId = td.parentElement.dataset.case;
  const column = DATA.columns[Number(td.dataset.col)];
  const cell = DATA.cells[caseId][column.key];
  const body = $("panel-body");
  body.replaceChildren();
  $("panel-title").textContent = `${caseId} @ ${column.key}`;
  const facts = document.createElement("dl");
  const rows = [
    ["outcome", cell.outcome === null ? "not run" : cell.outcome],
    ["expected", cell.expected_outcome === null ? "-" : cell.expected_outcome],
    ["verdict", td.classList.contains("unexpected") ? "UNEXPECTED"
      : cell.blame === "not-pass" ? "fails with the pass off too: not the pass's"
      : "as expected"],
    ["torch", column.torch],
    ["recorded by", ((DATA.recorded || {})[caseId] || {})[column.key] || "-"],
    ["fires (counter)", `${show(cell.fire_count)} of ${show(cell.expected_count)} expected`],
    ["rewrites in the graph", show(cell.graph_rewrites)],
    ["the pass's path", show(cell.path)],
    ["max abs error", show(cell.max_abs_error)],
    ["since the release before", td.dataset.change || "same outcome"],
  ];
  if (td.dataset.baseline) rows.push(["vs baseline", td.dataset.baseline]);
  if (cell.blame) rows.push(["blame", cell.blame]);
  for (const [k, v] of rows) facts.append(text("dt", k), text("dd", v));
  body.append(facts);
  if (cell.expectation_reason) {
    body.append(text("h3", "why this outcome is expected"), text("pre", cell.expectation_reason));
  }
  if (cell.message) body.append(text("h3", "message"), text("pre", cell.message));
  if (cell.frames && cell.frames.length) {
    body.append(text("h3", "where (innermost frames in torch)"), text("pre", cell.frames.join("\n")));
  }
  const commands = DATA.commands[column.key] || {repro: "-", rerun: "-"};
  const fill = (template) => template.split("{case}").join(caseId);
  body.append(commandBlock("reproduce (standalone script)", fill(commands.repro)));
  body.append(commandBlock("rerun", fill(commands.rerun)));
  const links = (DATA.links[caseId] || {})[column.key] || [];
  if (links.length) {
    body.append(text("h3", "issues and pull requests"));
    const list = document.createElement("ul");
    for (const url of links) {
      const a = text("a", url);
      a.href = url;
      const li = document.createElement("li");
      li.append(a);
      list.append(li);
    }
    body.append(list);
  }
  body.append(text("h3", "full record"), text("pre", JSON.stringify(cell, null, 1)));
  opener = button;
  panel.hidden = false;
  $("panel-close").focus();
}

function closePanel() {
  panel.hidden = true;
  if (opener) opener.focus();
}

for (const table of document.querySelectorAll("table.matrix")) {
  table.addEventListener("click", (event) => {
    const button = event.target.closest("td.cell button");
    if (button) openPanel(button);
  });
}
$("panel-close").onclick = closePanel;
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && !panel.hidden) closePanel();
});

// Each section's all-fused rows fold; a section without any has neither rows nor button.
const toggles = [...document.querySelectorAll("button.toggle-fused")];
function fold(toggle, folded) {
  const rows = $(toggle.getAttribute("aria-controls"));
  if (!rows) return;
  rows.classList.toggle("folded", folded);
  toggle.textContent = folded ? "show" : "hide";
  toggle.setAttribute("aria-expanded", String(!folded));
}
function setFolded(folded) {
  for (const toggle of toggles) fold(toggle, folded);
}
for (const toggle of toggles) {
  toggle.onclick = () => fold(toggle, !$(toggle.getAttribute("aria-controls")).classList.contains("folded"));
}
setFolded(true);

const q = $("q"), o = $("o"), c = $("c");
function apply() {
  const t = q.value.toLowerCase(), want = o.value, only = c.checked;
  if (t || want || only) setFolded(false);
  for (const r of document.querySelectorAll("table.matrix tr.row")) {
    const okT = r.dataset.case.toLowerCase().includes(t);
    const okO = !want || r.dataset.outcomes.split(" ").includes(want);
    const okC = !only || r.dataset.changes === "1";
    r.style.display = okT && okO && okC ? "" : "none";
  }
}
q.oninput = o.onchange = c.onchange = apply;
document.body.dataset.ready = "1";
