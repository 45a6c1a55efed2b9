// radialog web page: upload -> report (POST /v1/reports), then a dialog through
// POST /v1/chat/completions (streamed). The server is stateless: the page keeps the
// conversation and sends it with every message.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  file: null,
  report: null,        // the /v1/reports answer
  currentReport: "",   // latest report text (after corrections that produced a report)
  present: new Set(),  // findings the report should currently contain (for the correct panel)
  messages: [],        // OpenAI-format conversation
  dialog: [],          // [{role, text}] shown below the report (for the Markdown download)
  busy: false,
  force: false,        // the input gate was overridden for this image: say so in every request
};

function apiKey() { return sessionStorage.getItem("radialog-key") || ""; }
function headers(extra) {
  const h = Object.assign({}, extra || {});
  if (apiKey()) h["Authorization"] = "Bearer " + apiKey();
  return h;
}

function setStatus(text, isError) {
  const el = $("status");
  el.textContent = text || "";
  el.classList.toggle("error", !!isError);
}

function setBusy(busy) {
  state.busy = busy;
  document.querySelectorAll("button").forEach((b) => {
    if (b.id === "generate") b.disabled = busy || !state.file;
    else b.disabled = busy;
  });
}

async function errorMessage(resp) {
  return (await errorBody(resp)).message;
}

async function errorBody(resp) {
  if (resp.status === 401) $("key-row").classList.remove("hidden");
  try {
    const body = await resp.json();
    if (body && body.error && body.error.message) return body.error;
  } catch (e) { /* not JSON */ }
  return { message: "the server answered " + resp.status + " " + resp.statusText, code: null };
}

// ---------------------------------------------------------------- upload and report

function chooseFile(file) {
  state.file = file || null;
  $("drop-text").textContent = file ? file.name + " (" + Math.round(file.size / 1024) + " KiB)"
    : "Choose or drop a chest X-ray (PNG, JPEG or DICOM)";
  $("generate").disabled = !file || state.busy;
  $("gate-refused").classList.add("hidden");
  setStatus("");
}

// force: the expert override of the input gate (after it refused this file).
async function generateReport(ev, force) {
  if (ev) ev.preventDefault();
  if (!state.file || state.busy) return;
  setBusy(true);
  $("gate-refused").classList.add("hidden");
  setStatus("Reading the image and writing the report…");
  const form = new FormData();
  form.append("file", state.file);
  if (force) form.append("force", "true");
  try {
    const resp = await fetch("/v1/reports?include_image=true", { method: "POST", body: form, headers: headers() });
    if (!resp.ok) {
      const err = await errorBody(resp);
      if (err.code === "not_a_chest_xray") {
        // The input gate refused the file: say why, and offer the override.
        setStatus("");
        $("gate-refused-text").textContent = "Not a chest X-ray: " + err.message;
        $("gate-refused").classList.remove("hidden");
        return;
      }
      setStatus("Could not use this file: " + err.message, true);
      return;
    }
    const data = await resp.json();
    state.force = !!force;
    showReport(data);
    setStatus("Report ready (" + (data.timings.total || 0).toFixed(1) + " s).");
  } catch (e) {
    setStatus("The server cannot be reached: " + e.message, true);
  } finally {
    setBusy(false);
  }
}

function showReport(data) {
  state.report = data;
  state.currentReport = data.report;
  state.present = new Set(data.predicted);
  state.dialog = [];
  state.messages = [
    { role: "user", content: [
      { type: "text", text: "Write a report for this X-ray." },
      { type: "image_url", image_url: { url: data.image } },
    ] },
    { role: "assistant", content: data.report },
  ];
  $("preview").src = data.image;
  $("report").textContent = data.report;
  $("original").classList.add("hidden");
  $("model-name").textContent = "Model: " + data.model;
  renderFindings(data.findings, data.predicted, data.thresholds || {});
  renderConsistency(data.consistency);
  renderGate(data.gate);
  renderCorrectList();
  $("messages").innerHTML = "";
  $("result").classList.remove("hidden");
  $("chat-card").classList.remove("hidden");
}

function renderFindings(findings, predicted, thresholds) {
  const ul = $("findings");
  ul.innerHTML = "";
  for (const [label, p] of Object.entries(findings)) {
    const li = document.createElement("li");
    if (predicted.includes(label)) li.classList.add("on");
    const name = document.createElement("span");
    name.textContent = label;
    const bar = document.createElement("span");
    bar.className = "bar";
    const fill = document.createElement("span");
    fill.style.width = Math.round(p * 100) + "%";
    bar.appendChild(fill);
    const t = thresholds[label];
    if (typeof t === "number") {
      const tick = document.createElement("span");
      tick.className = "thr";
      tick.style.left = Math.round(t * 100) + "%";
      bar.appendChild(tick);
    }
    const val = document.createElement("span");
    val.className = "p";
    val.textContent = p.toFixed(2);
    li.append(name, bar, val);
    const limit = typeof t === "number" ? " " + t.toFixed(2) : "";
    li.title = (predicted.includes(label) ? "above its threshold" + limit + ": given to the report prompt"
      : "below its threshold" + limit);
    li.dataset.threshold = typeof t === "number" ? t.toFixed(2) : "";
    ul.appendChild(li);
  }
}

// The input gate's verdict, when a reader should see it: a warning (with the score) or
// an override. A plain accept shows nothing.
function renderGate(g) {
  const el = $("gate");
  el.textContent = "";
  el.classList.add("hidden");
  if (!g || (g.decision === "accept" && !g.forced)) return;
  const score = typeof g.score === "number" ? " (chest X-ray score " + g.score.toFixed(2) + ")" : "";
  if (g.forced) {
    el.textContent = "Input gate overridden: the image " + g.message + score +
      ". This report is for an image the model was not made for.";
  } else if (g.decision === "warn") {
    el.textContent = "Input gate warning: the image " + g.message + score + ".";
  } else {
    el.textContent = "Input gate: " + (g.message || g.decision) + ".";
  }
  el.classList.remove("hidden");
}

// The labeler's check of the report against the findings list, with the sentences that
// decided it; a repaired report says so and shows the first draft on demand.
function renderConsistency(c) {
  const box = $("consistency");
  box.innerHTML = "";
  box.className = "consistency hidden";
  if (!c) return;
  box.className = "consistency " + (c.consistent ? "ok" : "bad");
  const head = document.createElement("p");
  head.className = "summary";
  head.textContent = c.consistent ? "Consistent with the findings list"
    : "Not consistent with the findings list";
  box.appendChild(head);
  const groups = [
    ["stated", "Stated", c.stated],
    ["omitted", "Listed but not stated", c.omitted],
    ["unsupported", "Stated but not listed", c.unsupported],
  ];
  for (const [key, title, items] of groups) {
    if (!items || !items.length) continue;
    const h = document.createElement("div");
    h.textContent = title + ":";
    const ul = document.createElement("ul");
    ul.className = key;
    for (const s of items) {
      const li = document.createElement("li");
      li.textContent = s.label;
      if (s.evidence && s.evidence.length) {
        const ev = document.createElement("span");
        ev.className = "evidence";
        ev.textContent = " — \u201c" + s.evidence.join(" ") + "\u201d";
        li.appendChild(ev);
      }
      ul.appendChild(li);
    }
    box.append(h, ul);
  }
  if (c.repaired) {
    const note = document.createElement("div");
    note.className = "repaired";
    note.textContent = c.repair_method === "sentences"
      ? "The first draft disagreed with the findings list and was repaired automatically, sentence by sentence (what changed is listed below)."
      : "The first draft disagreed with the findings list and was repaired automatically by a correction turn.";
    const details = document.createElement("details");
    const summary = document.createElement("summary");
    summary.textContent = "Show the first draft";
    const draft = document.createElement("p");
    draft.className = "draft";
    draft.textContent = c.original_report || "";
    details.append(summary, draft);
    note.appendChild(details);
    box.appendChild(note);
  }
  for (const n of c.notes || []) {
    const p = document.createElement("p");
    p.className = "muted small";
    p.textContent = n;
    box.appendChild(p);
  }
}

// ---------------------------------------------------------------- dialog

function addBubble(role, text) {
  const div = document.createElement("div");
  div.className = "msg " + role;
  div.textContent = text;
  $("messages").appendChild(div);
  div.scrollIntoView({ block: "end" });
  return div;
}

function quoteLabel(label) {
  const l = label.toLowerCase();
  return l.includes(" ") ? '"' + l + '"' : l;
}

async function send(text, shown) {
  text = (text || "").trim();
  if (!text || state.busy || !state.report) return false;
  setBusy(true);
  addBubble("user", shown || text);
  const bubble = addBubble("assistant", "…");
  const messages = state.messages.concat([{ role: "user", content: text }]);
  let answer = "";
  let final = null;
  let failed = null;
  try {
    const resp = await fetch("/v1/chat/completions", {
      method: "POST",
      headers: headers({ "Content-Type": "application/json" }),
      body: JSON.stringify(Object.assign({ messages: messages, stream: true },
        state.force ? { force: true } : {})),
    });
    if (!resp.ok) {
      failed = await errorMessage(resp);
    } else {
      const reader = resp.body.getReader();
      const decoder = new TextDecoder();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buf.indexOf("\n\n")) >= 0) {
          const event = buf.slice(0, cut);
          buf = buf.slice(cut + 2);
          if (!event.startsWith("data: ")) continue;
          const data = event.slice(6);
          if (data === "[DONE]") continue;
          const obj = JSON.parse(data);
          if (obj.error) { failed = obj.error.message; continue; }
          const choice = obj.choices && obj.choices[0];
          if (choice && choice.delta && choice.delta.content) {
            answer += choice.delta.content;
            bubble.textContent = answer;
          }
          if (choice && choice.finish_reason) final = obj;
        }
      }
    }
  } catch (e) {
    failed = "the server cannot be reached: " + e.message;
  }
  setBusy(false);
  if (failed) {
    bubble.className = "msg error";
    bubble.textContent = "Error: " + failed;
    return false;
  }
  bubble.textContent = answer || "(empty answer)";
  state.messages = messages.concat([{ role: "assistant", content: answer }]);
  state.dialog.push({ role: "user", text: shown || text }, { role: "assistant", text: answer });
  const extra = final && final.radialog;
  for (const n of (extra && extra.notices) || []) {
    const note = document.createElement("span");
    note.className = "note";
    note.textContent = "Note: " + n;
    bubble.appendChild(note);
  }
  if (extra && extra.kind === "correct") {
    // Only a correction that produced a report replaces it; "yes" or an empty answer stays
    // a reply in the dialog and the report is kept.
    if (extra.correction && extra.correction.replaced && extra.report) {
      state.currentReport = extra.report;
      $("report").textContent = extra.report;
      $("original-report").textContent = state.report.report;
      $("original").classList.toggle("hidden", extra.report === state.report.report);
    }
    if (extra.correction) {
      const c = extra.correction;
      const parts = [];
      for (const [k, ok] of Object.entries(c.added)) parts.push((ok ? "added " : "NOT added ") + k.toLowerCase());
      for (const [k, ok] of Object.entries(c.removed)) parts.push((ok ? "removed " : "NOT removed ") + k.toLowerCase());
      const other = Object.keys(c.other_changes);
      if (other.length) parts.push("also changed: " + other.join(", ").toLowerCase());
      const check = document.createElement("span");
      check.className = "check";
      check.textContent = "Correction check: " + parts.join("; ")
        + (c.replaced ? "" : " — the answer is not a report; the report is unchanged");
      bubble.appendChild(check);
    }
    return !!(extra.correction && extra.correction.replaced);
  }
  return true;
}

function renderCorrectList() {
  const box = $("correct-list");
  box.innerHTML = "";
  for (const label of Object.keys(state.report.findings)) {
    if (label === "No Finding") continue;
    const l = document.createElement("label");
    const cb = document.createElement("input");
    cb.type = "checkbox";
    cb.value = label;
    cb.checked = state.present.has(label);
    l.append(cb, " " + label);
    box.appendChild(l);
  }
}

async function applyCorrection() {
  const add = [], remove = [];
  $("correct-list").querySelectorAll("input").forEach((cb) => {
    if (cb.checked && !state.present.has(cb.value)) add.push(cb.value);
    if (!cb.checked && state.present.has(cb.value)) remove.push(cb.value);
  });
  if (!add.length && !remove.length) { setStatus("Nothing to correct: tick or untick a finding first.", true); return; }
  const cmd = "/correct " + add.map((a) => "+" + quoteLabel(a)).concat(remove.map((r) => "-" + quoteLabel(r))).join(" ");
  const shown = "Correct the report: " + [add.length ? "add " + add.join(", ").toLowerCase() : "",
    remove.length ? "remove " + remove.join(", ").toLowerCase() : ""].filter(Boolean).join("; ");
  if (await send(cmd, shown)) {
    add.forEach((a) => state.present.add(a));
    remove.forEach((r) => state.present.delete(r));
    $("correct-panel").classList.add("hidden");
    setStatus("");
  }
}

// ---------------------------------------------------------------- download

function markdown() {
  const r = state.report;
  const lines = ["# Chest X-ray report", "", "> **" + r.disclaimer + "**", "", "Model: `" + r.model + "`", "",
    "## Findings (classifier probability)", "", "| finding | probability | predicted |", "|---|---:|:---:|"];
  for (const [label, p] of Object.entries(r.findings)) {
    lines.push("| " + label + " | " + p.toFixed(2) + " | " + (r.predicted.includes(label) ? "yes" : "") + " |");
  }
  lines.push("", "## Report", "", state.currentReport);
  if (state.currentReport !== r.report) lines.push("", "## Report before corrections", "", r.report);
  const c = r.consistency;
  if (c) {
    lines.push("", "## Consistency check", "", c.consistent ? "Consistent with the findings list."
      : "Not consistent with the findings list.");
    for (const [title, items] of [["Stated", c.stated], ["Listed but not stated", c.omitted], ["Stated but not listed", c.unsupported]]) {
      if (items && items.length) lines.push("", title + ": " + items.map((s) => s.label).join(", "));
    }
    if (c.repaired) lines.push("", "Repaired automatically; first draft:", "", c.original_report || "");
  }
  if (state.dialog.length) {
    lines.push("", "## Dialog", "");
    for (const m of state.dialog) lines.push((m.role === "user" ? "**You**: " : "**radialog**: ") + m.text, "");
  }
  return lines.join("\n").trim() + "\n";
}

function download() {
  const blob = new Blob([markdown()], { type: "text/markdown" });
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = "radialog-report.md";
  document.body.appendChild(a);
  a.click();
  setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 0);
}

// ---------------------------------------------------------------- wiring

$("file").addEventListener("change", (e) => chooseFile(e.target.files[0]));
const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  if (e.dataTransfer.files.length) chooseFile(e.dataTransfer.files[0]);
});
$("upload-form").addEventListener("submit", (e) => generateReport(e, false));
$("force").addEventListener("click", () => generateReport(null, true));
$("api-key").addEventListener("change", (e) => sessionStorage.setItem("radialog-key", e.target.value.trim()));
$("chat-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const q = $("question");
  const text = q.value;
  if (await send(text)) q.value = "";
});
document.querySelectorAll("[data-cmd]").forEach((b) =>
  b.addEventListener("click", () => send(b.dataset.cmd, b.textContent)));
$("translate").addEventListener("click", () => {
  const lang = $("language").value.trim();
  if (lang) send("/translate " + lang, "Translate into " + lang);
});
$("open-correct").addEventListener("click", () => $("correct-panel").classList.toggle("hidden"));
$("send-correct").addEventListener("click", applyCorrection);
$("download").addEventListener("click", download);
