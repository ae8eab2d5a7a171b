"use strict";
// The forecast desk: reads a CSV through /v1/parse (the library's checks), forecasts through
// /v1/forecast, and draws candles, volume, the median with its 50/80/95% fans, P(up) and volatility.

const LEVELS = [0.025, 0.1, 0.25, 0.5, 0.75, 0.9, 0.975];
const BANDS = [[0.025, 0.975, "95% band", 0.16], [0.1, 0.9, "80% band", 0.24], [0.25, 0.75, "50% band", 0.36]];
const FIELDS = ["open", "high", "low", "close", "volume", "amount"];
const COLORS = { up: "#26a69a", down: "#ef5350", accent: "#4f8cff", actual: "#f5c542", text: "#d1d4dc", muted: "#8b949e", grid: "#2a313c" };
const MIN_BARS = 10;
const state = { bars: null, name: null, forecast: null };
const $ = (id) => document.getElementById(id);

function setStatus(status) { document.body.dataset.status = status; }

function showError(message) {
  const box = $("error");
  box.textContent = message || "";
  box.hidden = !message;
  if (message) setStatus("error");
}

async function api(path, options = {}) {
  const headers = { ...(options.headers || {}) };
  const key = sessionStorage.getItem("kronos-api-key");
  if (key) headers["X-API-Key"] = key;
  const response = await fetch(path, { ...options, headers });
  let body = null;
  try { body = await response.json(); } catch (err) { body = null; }
  if (!response.ok) {
    if (response.status === 401) $("key-box").hidden = false;
    throw new Error(body && body.error ? body.error.message : `${response.status} ${response.statusText}`);
  }
  return body;
}

function fmt(value) {
  if (value === null || value === undefined || !Number.isFinite(value)) return "–";
  return value.toFixed(Math.abs(value) < 10 ? 5 : 2);
}
function pct(value) { return Number.isFinite(value) ? `${(100 * value).toFixed(2)}%` : "–"; }
function plotTime(stamp) { return stamp.replace(/(Z|[+-]\d\d:\d\d)$/, "").replace("T", " "); }
function showTime(stamp) { return plotTime(stamp).replace(/ 00:00:00$/, ""); }

async function loadModel() {
  try {
    const info = await api("/v1/models");
    const model = info.models[0];
    $("model").textContent = `${model.name} · context ${model.max_context} · lookback ${model.lookback} · ${model.device}`;
    $("steps").max = info.limits.max_steps;
    $("paths").max = info.limits.max_paths;
    if (!$("paths").value) $("paths").value = info.page.paths;
    const select = $("example");
    select.length = 1;
    for (const name of info.examples) select.add(new Option(name, name));
    setStatus("idle");
  } catch (err) {
    $("model").textContent = "not connected";
    showError(err.message);
  }
}

async function readCsv(file, name) {
  showError("");
  const form = new FormData();
  form.append("file", file, name);
  try {
    const parsed = await api("/v1/parse", { method: "POST", body: form });
    state.bars = parsed.bars;
    state.name = parsed.name.replace(/\.csv$/i, "");
    state.forecast = null;
  } catch (err) {
    state.bars = null;
    $("run").disabled = true;
    $("data-info").textContent = "no data";
    showError(`${name}: ${err.message}`);
    return;
  }
  const bars = state.bars;
  $("data-info").textContent = `${state.name}: ${bars.length} bars, ${showTime(bars[0].timestamp)} → ${showTime(bars[bars.length - 1].timestamp)}`;
  const origin = $("origin");
  origin.min = MIN_BARS - 1;
  origin.max = bars.length - 2;
  origin.value = Math.max(MIN_BARS - 1, bars.length - 1 - Number($("steps").value));
  $("run").disabled = false;
  $("download").disabled = true;
  updateOrigin();
  setStatus("data");
  draw();
}

function currentOrigin() {
  return $("replay").checked ? Number($("origin").value) : state.bars.length - 1;
}

function updateOrigin() {
  const replay = $("replay").checked;
  $("origin").disabled = !replay || !state.bars;
  if (!state.bars) return;
  const origin = currentOrigin();
  const after = state.bars.length - 1 - origin;
  $("origin-info").textContent = replay
    ? `from bar ${origin + 1} of ${state.bars.length} (${showTime(state.bars[origin].timestamp)}); ${after} bars after it to compare`
    : "off: forecasting from the last bar";
}

function options() {
  const number = (id) => Number($(id).value);
  const seed = $("seed").value.trim();
  return {
    steps: number("steps"), paths: number("paths"), seed: seed === "" ? null : Number(seed),
    temperature: number("temperature"), top_p: number("top_p"), quantile_levels: LEVELS,
    calibrate: $("calibrate").checked,
  };
}

async function runForecast() {
  if (!state.bars) return;
  showError("");
  setStatus("running");
  $("run").disabled = true;
  const origin = currentOrigin();
  const started = performance.now();
  try {
    const result = await api("/v1/forecast", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ bars: state.bars.slice(0, origin + 1), ...options() }),
    });
    state.forecast = { result, origin, elapsed: performance.now() - started };
    $("download").disabled = false;
    await draw();
  } catch (err) {
    showError(err.message);
  } finally {
    $("run").disabled = !state.bars;
  }
}

// One slot per bar, in time order (a category axis): nights, weekends and holidays without bars
// take no width, for daily and intraday bars alike, whatever the market's hours. About 8 ticks,
// labelled by date for daily bars and by day and time for intraday ones.
const TICKS = 8;
function timeAxis(stamps) {
  const slots = [...new Set(stamps.map(plotTime))].sort();
  const daily = slots.every((s) => s.length === 10 || s.endsWith(" 00:00:00"));
  const every = Math.max(1, Math.ceil(slots.length / TICKS));
  const tickvals = slots.filter((_, i) => i % every === 0);
  const ticktext = tickvals.map((s) => (daily ? s.slice(0, 10) : s.slice(5, 16)));
  return { type: "category", categoryorder: "array", categoryarray: slots, tickvals, ticktext, tickangle: 0 };
}

function candles(bars, name, up, down, opacity = 1) {
  return {
    type: "candlestick", name, x: bars.map((b) => plotTime(b.timestamp)),
    open: bars.map((b) => b.open), high: bars.map((b) => b.high), low: bars.map((b) => b.low), close: bars.map((b) => b.close),
    increasing: { line: { color: up, width: 1 }, fillcolor: up }, decreasing: { line: { color: down, width: 1 }, fillcolor: down },
    opacity, xaxis: "x", yaxis: "y",
  };
}

async function draw() {
  const bars = state.bars;
  const forecast = state.forecast;
  const steps = forecast ? forecast.result.timestamps.length : Number($("steps").value);
  const origin = forecast ? forecast.origin : bars.length - 1;
  const shown = bars.slice(Math.max(0, origin + 1 - Math.max(4 * steps, 60)), origin + 1);
  const traces = [
    candles(shown, "history", COLORS.up, COLORS.down),
    {
      type: "bar", name: "volume", x: shown.map((b) => plotTime(b.timestamp)), y: shown.map((b) => b.volume || 0),
      marker: { color: shown.map((b) => (b.close >= b.open ? COLORS.up : COLORS.down)) }, opacity: 0.5,
      xaxis: "x", yaxis: "y2", showlegend: false,
    },
  ];
  const stamps = shown.map((b) => b.timestamp);
  const shapes = [];
  if (forecast) {
    const r = forecast.result;
    const last = shown[shown.length - 1];
    const x = [plotTime(last.timestamp), ...r.timestamps.map(plotTime)];
    const close = r.quantiles.close;
    for (const [low, high, name, alpha] of BANDS) {
      if (!close[String(low)] || !close[String(high)]) continue;
      traces.push({ type: "scatter", mode: "lines", x, y: [r.last_close, ...close[String(low)]], line: { width: 0 }, hoverinfo: "skip", showlegend: false, xaxis: "x", yaxis: "y" });
      traces.push({
        type: "scatter", mode: "lines", name, x, y: [r.last_close, ...close[String(high)]], line: { width: 0 },
        fill: "tonexty", fillcolor: `rgba(79, 140, 255, ${alpha})`, xaxis: "x", yaxis: "y",
      });
    }
    traces.push({ type: "scatter", mode: "lines", name: "median", x, y: [r.last_close, ...r.median.close], line: { color: COLORS.accent, width: 2 }, xaxis: "x", yaxis: "y" });
    traces.push({
      type: "bar", name: "median volume", x: x.slice(1), y: r.median.volume, marker: { color: COLORS.accent }, opacity: 0.35,
      xaxis: "x", yaxis: "y2", showlegend: false,
    });
    const actual = bars.slice(origin + 1, origin + 1 + steps);
    if (actual.length) {
      traces.push(candles(actual, "actual", COLORS.actual, COLORS.actual, 0.9));
      traces.push({ type: "bar", name: "actual volume", x: actual.map((b) => plotTime(b.timestamp)), y: actual.map((b) => b.volume || 0), marker: { color: COLORS.actual }, opacity: 0.45, xaxis: "x", yaxis: "y2", showlegend: false });
    }
    stamps.push(...r.timestamps, ...actual.map((b) => b.timestamp));
    shapes.push({ type: "line", xref: "x", yref: "paper", x0: x[0], x1: x[0], y0: 0, y1: 1, line: { color: COLORS.muted, width: 1, dash: "dot" } });
  }
  const axis = { gridcolor: COLORS.grid, zerolinecolor: COLORS.grid, color: COLORS.muted };
  const layout = {
    paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)", font: { color: COLORS.text, size: 12 },
    margin: { l: 60, r: 20, t: 40, b: 40 }, hovermode: "x unified", showlegend: true,
    legend: { orientation: "h", x: 0, y: 1.08 }, bargap: 0.2, shapes,
    title: { text: forecast ? `${state.name}: ${steps}-step forecast${forecast.result.calibrated ? ", calibrated" : ""}` : state.name, x: 0.99, xanchor: "right", font: { size: 13 } },
    xaxis: { ...axis, ...timeAxis(stamps), anchor: "y2", rangeslider: { visible: false } },
    yaxis: { ...axis, domain: [0.27, 1], title: { text: "price" } },
    yaxis2: { ...axis, domain: [0, 0.2], title: { text: "volume" } },
  };
  const config = { responsive: true, displaylogo: false };
  await Plotly.react("chart", traces, layout, config);
  await drawStats(forecast, axis, config);
  showCards(forecast);
  setStatus(forecast ? "drawn" : "data");
}

async function drawStats(forecast, axis, config) {
  if (!forecast) { Plotly.purge("chart-stats"); return; }
  const r = forecast.result;
  const step = r.timestamps.map((_, i) => i + 1);
  const traces = [
    { type: "scatter", mode: "lines+markers", name: "predicted volatility", x: step, y: r.expected_volatility, line: { color: COLORS.accent, width: 2 }, xaxis: "x", yaxis: "y" },
    { type: "scatter", mode: "lines", name: "historical (√h × per bar)", x: step, y: r.historical_volatility, line: { color: COLORS.muted, dash: "dash" }, xaxis: "x", yaxis: "y" },
    { type: "bar", name: "P(close above last)", x: step, y: r.prob_up, marker: { color: r.prob_up.map((p) => (p >= 0.5 ? COLORS.up : COLORS.down)) }, xaxis: "x2", yaxis: "y2" },
  ];
  const layout = {
    paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)", font: { color: COLORS.text, size: 12 },
    margin: { l: 60, r: 20, t: 30, b: 40 }, showlegend: true, legend: { orientation: "h", x: 0, y: 1.18 },
    xaxis: { ...axis, domain: [0, 0.46], title: { text: "step" } }, yaxis: { ...axis, title: { text: "realised volatility" }, tickformat: ".2%", rangemode: "tozero" },
    xaxis2: { ...axis, domain: [0.56, 1], title: { text: "step" } }, yaxis2: { ...axis, anchor: "x2", range: [0, 1], tickformat: ".0%", title: { text: "P(up)" } },
    shapes: [{ type: "line", xref: "x2 domain", yref: "y2", x0: 0, x1: 1, y0: 0.5, y1: 0.5, line: { color: COLORS.muted, width: 1, dash: "dot" } }],
  };
  await Plotly.react("chart-stats", traces, layout, config);
}

function showCards(forecast) {
  const set = (id, text, cls) => { const el = $(id); el.textContent = text; el.className = `value ${cls || ""}`; };
  if (!forecast) {
    for (const id of ["c-last", "c-median", "c-pup", "c-band", "c-vol"]) set(id, "–");
    $("card-replay").hidden = true;
    $("footnote").textContent = "";
    return;
  }
  const r = forecast.result;
  const h = r.timestamps.length - 1;
  const median = r.median.close[h];
  const change = median / r.last_close - 1;
  set("c-last", fmt(r.last_close));
  set("c-median", `${fmt(median)} (${change >= 0 ? "+" : ""}${pct(change)})`, change >= 0 ? "up" : "down");
  set("c-pup", `${(100 * r.prob_up[h]).toFixed(0)}%`, r.prob_up[h] >= 0.5 ? "up" : "down");
  set("c-band", `${fmt(r.quantiles.close["0.1"][h])} – ${fmt(r.quantiles.close["0.9"][h])}`);
  set("c-vol", `${pct(r.expected_volatility[h])} / ${pct(r.historical_volatility[h])}`);
  const actual = state.bars.slice(forecast.origin + 1, forecast.origin + 1 + r.timestamps.length);
  $("card-replay").hidden = actual.length === 0;
  if (actual.length) {
    const inside = actual.filter((b, i) => b.close >= r.quantiles.close["0.1"][i] && b.close <= r.quantiles.close["0.9"][i]).length;
    set("c-replay", `${inside} of ${actual.length} steps`);
  }
  const c = r.calibration;
  const calibrated = c
    ? ` Calibrated on ${c.past_forecasts} past forecasts: the model's move kept ${pct(c.move_kept)}, its spread `
      + `weighed ${pct(c.spread_weight)} against the history's volatility (means over the steps).`
    : "";
  $("footnote").textContent = `${r.model}: ${r.history_bars} bars of history, ${r.paths_sampled} paths, seed ${r.seed}, `
    + `future bars ${r.spacing}; answered in ${forecast.elapsed.toFixed(0)} ms in a generation call with ${r.batch_series} series.${calibrated}`;
}

function downloadCsv() {
  const r = state.forecast.result;
  const header = ["timestamps"];
  const columns = [];
  for (const field of FIELDS) {
    header.push(`${field}_mean`);
    columns.push(r.mean[field]);
    for (const level of Object.keys(r.quantiles[field])) {
      header.push(`${field}_q${level}`);
      columns.push(r.quantiles[field][level]);
    }
  }
  header.push("prob_close_above_last", "realized_vol");
  columns.push(r.prob_up, r.expected_volatility);
  const lines = [header.join(",")];
  r.timestamps.forEach((stamp, i) => lines.push([plotTime(stamp), ...columns.map((c) => (c[i] === null ? "" : c[i]))].join(",")));
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([lines.join("\n") + "\n"], { type: "text/csv" }));
  link.download = `${state.name}_forecast${r.calibrated ? "_calibrated" : ""}.csv`;
  document.body.appendChild(link);
  link.click();
  link.remove();
}

$("file").addEventListener("change", (event) => {
  const file = event.target.files[0];
  if (file) { $("example").value = ""; readCsv(file, file.name); }
});
$("example").addEventListener("change", async (event) => {
  const name = event.target.value;
  if (!name) return;
  $("file").value = "";
  const response = await fetch(`/static/examples/${encodeURIComponent(name)}.csv`);
  readCsv(await response.blob(), `${name}.csv`);
});
$("replay").addEventListener("change", updateOrigin);
$("origin").addEventListener("input", updateOrigin);
$("run").addEventListener("click", runForecast);
$("download").addEventListener("click", downloadCsv);
$("key-box").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem("kronos-api-key", $("api-key").value.trim());
  $("key-box").hidden = true;
  showError("");
  loadModel();
});
loadModel();
