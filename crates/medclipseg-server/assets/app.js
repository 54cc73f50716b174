// MedCLIPSeg review page: plain JS, no framework, talks to the JSON API of `medclipseg serve`.
"use strict";

const token = new URLSearchParams(location.search).get("token");
const $ = (id) => document.getElementById(id);
const state = { image: null, runs: [], running: [], map: "mask" };

// Every URL carries the token when the page was opened with one (EventSource cannot send headers).
function url(path, params = {}) {
  const u = new URL(path, location.origin);
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") u.searchParams.set(k, v);
  if (token) u.searchParams.set("token", token);
  return u.toString();
}

async function api(path, options = {}) {
  const response = await fetch(url(path), options);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || `${response.status} ${response.statusText}`);
  return body;
}

function status(text, error = false) {
  $("status").textContent = text;
  $("status").className = error ? "error" : "muted";
}

// Colour maps: the mask in red, probability and uncertainty through an inferno-like ramp.
const RAMP = [[0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99], [212, 72, 66], [245, 125, 21], [250, 193, 39], [252, 255, 164]];
function ramp(t) {
  const x = Math.max(0, Math.min(1, t)) * (RAMP.length - 1);
  const i = Math.min(RAMP.length - 2, Math.floor(x));
  const f = x - i;
  return RAMP[i].map((c, k) => Math.round(c + f * (RAMP[i + 1][k] - c)));
}
const MAP_RANGE = { mask: ["0", "1", "mask"], probability: ["0", "1", "probability"],
  entropy: ["0", "ln 2", "predictive entropy (nats)"], aleatoric: ["0", "ln 2", "aleatoric (nats)"],
  epistemic: ["0", "ln 2", "epistemic (nats)"], band: ["0", "1", "uncertain band"] };
// The 0/1 maps: drawn as solid colour where on.
const BINARY = { mask: [255, 40, 40], band: [255, 200, 0] };

function drawColorbar() {
  const c = $("colorbar"), g = c.getContext("2d");
  for (let x = 0; x < c.width; x++) {
    const solid = BINARY[state.map];
    const [r, gr, b] = solid ? (x < c.width / 2 ? [0, 0, 0] : solid) : ramp(x / (c.width - 1));
    g.fillStyle = `rgb(${r},${gr},${b})`;
    g.fillRect(x, 0, 1, c.height);
  }
  const [lo, hi, name] = MAP_RANGE[state.map];
  $("bar-min").textContent = lo; $("bar-max").textContent = hi; $("bar-name").textContent = name;
}

function loadImage(src) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error(`cannot load ${src}`));
    img.src = src;
  });
}

function sliceParams() {
  if (!state.image || state.image.dims[2] === 1 && state.image.kind === "picture") return { axis: 2, index: 0 };
  return { axis: $("axis").value, index: $("slice").value };
}

// --- prompts -------------------------------------------------------------------------------
function addPrompt(text = "") {
  const row = document.createElement("div");
  row.className = "prompt-row";
  const n = $("prompts").children.length + 1;
  row.innerHTML = `<label class="sr" for="prompt-${n}" hidden>Prompt ${n}</label>
    <input type="text" id="prompt-${n}" class="prompt" placeholder="e.g. a round tumour in the centre" aria-label="Prompt ${n}">
    <button type="button" class="remove" aria-label="Remove prompt ${n}">×</button>`;
  row.querySelector("input").value = text;
  row.querySelector(".remove").onclick = () => { if ($("prompts").children.length > 1) row.remove(); };
  $("prompts").appendChild(row);
  row.querySelector("input").focus();
}

// --- image ---------------------------------------------------------------------------------
async function upload(files) {
  if (!files.length) return;
  const form = new FormData();
  for (const f of files) form.append("files", f, f.name);
  status(`uploading ${files.length} file(s)…`);
  try {
    state.image = await api("/api/images", { method: "POST", body: form });
  } catch (e) { status(e.message, true); return; }
  const im = state.image;
  const volume = im.kind !== "picture";
  const spacing = im.spacing ? `, spacing ${im.spacing.map((s) => s.toFixed(2)).join(" × ")} mm` : "";
  $("image-info").textContent = `${im.name}: ${im.kind}, ${im.dims.join(" × ")}${spacing}`;
  $("volume-controls").hidden = !volume;
  if (volume) setSliceRange(true);
  state.runs = [];
  $("panels").innerHTML = ""; $("dice").innerHTML = "";
  $("run").disabled = false;
  status("image ready: type a prompt and Run");
  await showBase();
}

function setSliceRange(middle) {
  const axis = Number($("axis").value);
  const n = state.image.dims[axis];
  $("slice").max = n - 1;
  if (middle) $("slice").value = Math.floor(n / 2);
  $("slice-label").textContent = `${$("slice").value} / ${n - 1}`;
}

async function showBase() {
  // Before any run: one panel with the image alone.
  if (state.runs.length) return redrawAll();
  $("panels").innerHTML = "";
  const panel = makePanel({ prompt: "(no prompt yet)" });
  await drawPanel(panel, null);
}

// --- runs ----------------------------------------------------------------------------------
function prompts() {
  return [...document.querySelectorAll(".prompt")].map((i) => i.value.trim()).filter((p) => p);
}

async function run() {
  if (!state.image || $("run").disabled) return;
  const list = prompts();
  if (!list.length) { status("type a prompt first", true); document.querySelector(".prompt").focus(); return; }
  $("run").disabled = true; $("cancel").disabled = false;
  state.runs = []; $("panels").innerHTML = ""; $("dice").innerHTML = "";
  const total = list.length;
  let finished = 0;
  for (const prompt of list) {
    const form = new FormData();
    form.append("image", state.image.id);
    form.append("prompt", prompt);
    form.append("samples", $("samples").value);
    form.append("seed", $("seed").value);
    form.append("axis", $("axis").value);
    form.append("window", $("window").value);
    let job;
    try { job = await api("/api/predict", { method: "POST", body: form }); }
    catch (e) { status(`${prompt}: ${e.message}`, true); continue; }
    const entry = { prompt, job, panel: makePanel({ prompt }) };
    state.runs.push(entry); state.running.push(job.id);
  }
  status(`running ${state.runs.length} prompt(s)…`);
  await Promise.all(state.runs.map((entry) => follow(entry, () => {
    finished += 1;
    $("progress").value = finished / total;
  })));
  state.running = [];
  $("run").disabled = false; $("cancel").disabled = true;
  const done = state.runs.filter((r) => r.result);
  status(`done: ${done.length} of ${state.runs.length} prompt(s)`);
  await compare();
}

// Follows a job over server-sent events until it ends, then fetches and draws its result.
function follow(entry, onEnd) {
  return new Promise((resolve) => {
    const events = new EventSource(url(entry.job.events_url));
    events.addEventListener("progress", async (e) => {
      const s = JSON.parse(e.data);
      entry.panel.querySelector(".state").textContent = s.total ? `${s.status} ${s.done}/${s.total}` : s.status;
      if (state.runs.length === 1 && s.total) $("progress").value = s.done / s.total;
      if (["done", "failed", "cancelled"].includes(s.status)) {
        events.close();
        if (s.status === "done") {
          entry.result = await api(entry.job.status_url);
          await drawPanel(entry.panel, entry);
        } else {
          entry.panel.querySelector(".state").textContent = s.error ? `failed: ${s.error}` : s.status;
        }
        onEnd(); resolve();
      }
    });
    events.onerror = () => { /* the stream closes after the final event; polling covers a drop */ };
  });
}

async function cancelAll() {
  for (const id of state.running) {
    try { await api(`/api/jobs/${id}/cancel`, { method: "POST" }); } catch (e) { status(e.message, true); }
  }
  status("cancelling…");
}

// --- drawing -------------------------------------------------------------------------------
function makePanel({ prompt }) {
  const panel = document.createElement("article");
  panel.className = "panel";
  panel.innerHTML = `<h2></h2><div class="state muted">queued</div>
    <canvas class="view" role="img"></canvas><table class="numbers"></table><div class="downloads"></div>`;
  panel.querySelector("h2").textContent = prompt;
  panel.querySelector("canvas").setAttribute("aria-label", `image with overlay for: ${prompt}`);
  $("panels").appendChild(panel);
  return panel;
}

async function drawPanel(panel, entry) {
  // A newer redraw of this panel (a key held down, a slider dragged) supersedes this one.
  const generation = (panel.generation = (panel.generation || 0) + 1);
  const stale = () => panel.generation !== generation;
  const sp = sliceParams();
  const mapName = state.map;
  const base = await loadImage(url(state.image.view_url, { ...sp, window: $("window").value }));
  if (stale()) return;
  const canvas = panel.querySelector("canvas");
  canvas.width = base.width; canvas.height = base.height;
  const g = canvas.getContext("2d");
  g.drawImage(base, 0, 0);
  panel.dataset.overlayPixels = "0";
  if (!entry || !entry.result) return;
  // A map this job lacks (the band without a two-level calibration) leaves the image bare.
  if (!entry.result.maps[mapName]) return;
  const map = await loadImage(url(entry.result.maps[mapName], sp));
  if (stale()) return;
  const off = document.createElement("canvas");
  off.width = map.width; off.height = map.height;
  const og = off.getContext("2d");
  og.drawImage(map, 0, 0);
  const values = og.getImageData(0, 0, off.width, off.height);
  const opacity = Number($("opacity").value) / 100;
  const out = g.getImageData(0, 0, canvas.width, canvas.height);
  let drawn = 0, maskPx = 0;
  for (let p = 0; p < values.data.length; p += 4) {
    const v = values.data[p];
    if (BINARY[mapName]) {
      if (v < 128) continue;
      if (mapName === "mask") maskPx += 1;
      blend(out.data, p, BINARY[mapName], opacity);
    } else {
      blend(out.data, p, ramp(v / 255), opacity);
    }
    drawn += 1;
  }
  g.putImageData(out, 0, 0);
  panel.dataset.overlay = mapName;
  panel.dataset.overlayPixels = String(drawn);
  panel.querySelector(".state").textContent = "done";
  fillNumbers(panel, entry.result, mapName === "mask" ? maskPx : null);
  fillDownloads(panel, entry.result);
}

function blend(data, p, [r, g, b], a) {
  data[p] = Math.round(data[p] * (1 - a) + r * a);
  data[p + 1] = Math.round(data[p + 1] * (1 - a) + g * a);
  data[p + 2] = Math.round(data[p + 2] * (1 - a) + b * a);
}

function inPlaneSpacing(spacing) {
  const axis = Number($("axis").value);
  const other = [0, 1, 2].filter((a) => a !== axis);
  return spacing[other[0]] * spacing[other[1]];
}

function fmt(x, digits = 3) { return x === null || x === undefined ? "–" : Number(x).toFixed(digits); }

function fillNumbers(panel, result, slicePx) {
  const s = result.summary;
  const rows = [["lesion area (px)", s.mask_px]];
  if (s.area_mm2 !== null) rows.push(["lesion area (mm²)", fmt(s.area_mm2, 1)]);
  if (result.volume) {
    rows.push(["lesion volume (mm³)", fmt(s.volume_mm3, 1)]);
    if (slicePx !== null) {
      rows.push(["this slice (px)", slicePx]);
      if (s.spacing) rows.push(["this slice (mm²)", fmt(slicePx * inPlaneSpacing(s.spacing), 1)]);
    }
  }
  const m = s.in_mask;
  for (const k of ["entropy", "aleatoric", "epistemic"]) {
    rows.push([`${k} in mask: mean / max`, m ? `${fmt(m[k].mean)} / ${fmt(m[k].max)}` : "empty mask"]);
  }
  rows.push(["mean entropy (image)", fmt(s.mean_entropy)]);
  rows.push(["mask threshold", thresholdText(result.calibration)]);
  const table = panel.querySelector("table");
  table.innerHTML = "";
  for (const [k, v] of rows) {
    const tr = table.insertRow();
    tr.insertCell().textContent = k;
    tr.insertCell().textContent = v;
  }
}

// The rule behind the mask, and what a calibrated threshold promises.
function thresholdText(calibration) {
  if (!calibration) return "probability > 0.5 (not calibrated: no guarantee on what the mask misses)";
  const band = calibration.band ? `; uncertain band ${calibration.band.low} ≤ p < ${calibration.band.high}` : "";
  return `probability ≥ ${calibration.threshold}, calibrated on ${calibration.n} images: ${calibration.statement}${band}`;
}

function fillDownloads(panel, result) {
  const box = panel.querySelector(".downloads");
  box.innerHTML = "Download: ";
  for (const [name, path] of Object.entries(result.files)) {
    if (name === "result.json" && Object.keys(result.files).length > 1) continue;
    const a = document.createElement("a");
    a.href = url(path); a.textContent = name; a.download = name;
    box.appendChild(a);
  }
}

async function redrawAll() {
  if (!state.runs.length) return showBase();
  for (const entry of state.runs) await drawPanel(entry.panel, entry);
}

async function compare() {
  const done = state.runs.filter((r) => r.result);
  if (done.length < 2) return;
  const table = document.createElement("table");
  table.innerHTML = "<caption>Dice (DSC) between the prompts' masks</caption>";
  const head = table.insertRow();
  head.appendChild(document.createElement("th"));
  for (const r of done) { const th = document.createElement("th"); th.textContent = r.prompt; head.appendChild(th); }
  for (const a of done) {
    const tr = table.insertRow();
    const th = document.createElement("th"); th.textContent = a.prompt; tr.appendChild(th);
    for (const b of done) {
      const d = await api(`/api/compare?a=${a.job.id}&b=${b.job.id}`);
      tr.insertCell().textContent = d.dice.toFixed(3);
    }
  }
  $("dice").innerHTML = ""; $("dice").appendChild(table);
}

// --- wiring --------------------------------------------------------------------------------
function selectMap(name) {
  state.map = name;
  document.querySelector(`input[name=map][value=${name}]`).checked = true;
  drawColorbar();
  redrawAll();
}

function typing(e) { return ["INPUT", "TEXTAREA", "SELECT"].includes(e.target.tagName) && e.target.type !== "radio" && e.target.type !== "range"; }

document.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); run(); return; }
  if (e.key === "Enter" && e.target.classList && e.target.classList.contains("prompt")) { e.preventDefault(); run(); return; }
  if (e.key === "Escape") { cancelAll(); return; }
  if (typing(e)) return;
  const maps = ["mask", "probability", "entropy", "aleatoric", "epistemic", "band"];
  if (e.key >= "1" && e.key <= "5") selectMap(maps[Number(e.key) - 1]);
  if (e.key === "6" && !$("band-choice").hidden) selectMap("band");
  if (state.image && state.image.kind !== "picture" && (e.key === "[" || e.key === "]")) {
    const s = $("slice");
    s.value = Math.max(0, Math.min(Number(s.max), Number(s.value) + (e.key === "]" ? 1 : -1)));
    s.dispatchEvent(new Event("input"));
  }
});

$("file").addEventListener("change", (e) => upload([...e.target.files]));
$("add-prompt").onclick = () => addPrompt();
$("run").onclick = run;
$("cancel").onclick = cancelAll;
for (const r of document.querySelectorAll("input[name=map]")) r.addEventListener("change", () => selectMap(r.value));
$("opacity").addEventListener("input", () => { $("opacity-label").textContent = `${$("opacity").value}%`; redrawAll(); });
$("slice").addEventListener("input", () => { setSliceRange(false); redrawAll(); });
$("axis").addEventListener("change", () => { setSliceRange(true); redrawAll(); });
$("window").addEventListener("change", redrawAll);

(async function init() {
  addPrompt();
  document.querySelector(".prompt").blur();
  drawColorbar();
  try {
    const info = await api("/api/info");
    $("model-info").textContent = `${info.model} v${info.version} · ${info.image_size} px input · default ${info.defaults.samples} samples`;
    $("samples").value = info.defaults.samples;
    $("samples").max = info.limits.max_samples;
    $("seed").value = info.defaults.seed;
    $("mask-rule").textContent = `· mask: ${thresholdText(info.calibration)}`;
    $("band-choice").hidden = !(info.calibration && info.calibration.band);
  } catch (e) { $("model-info").textContent = `cannot reach the server: ${e.message}`; }
})();
