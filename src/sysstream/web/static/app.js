// The dashboard page: wires the stream, the timeline and the cards together.
// URLs are relative to the page (<meta name="sysstream-api">), so the page works at / and
// under any prefix; the stream URL is one function of the selected host (streamUrl).

import { Alerts } from "./alerts.js";
import { Card, theme } from "./card.js";
import { ContainersPanel } from "./containers.js";
import { Fleet } from "./fleet.js";
import { clockTime, duration, formatter } from "./format.js";
import { BAND_KEYS, extractAll, extractBands, PANELS, subscribedGroups } from "./panels.js";
import { ProcessPanel } from "./processes.js";
import { Schema } from "./schema.js";
import { State, Stream } from "./stream.js";
import { Buckets, Timeline } from "./timeline.js";

const WINDOWS = [60, 300, 900, 3600, 21600, 86400, 604800];
const MAX_POINTS = 1200; // per series and window; coarser intervals beyond that
// Windows up to this are the stream's own ticks (the server's in-memory ring backs them);
// longer ones are read from the history store, and shown only where the server has one.
const LIVE_WINDOW = 3600;
// Seconds per point of a stored window: the first that keeps it under MAX_POINTS. 60 is
// the store's 1-minute tier as stored, 120 pairs its rows, 900 is its 15-minute tier as
// stored, so no window makes the server re-aggregate more than two rows per point.
const STORE_STEPS = [60, 120, 900];
const TOKEN_KEY = "sysstream.token";
const WINDOW_KEY = "sysstream.window";

const apiMeta = document.querySelector('meta[name="sysstream-api"]').content;
const apiBase = new URL(apiMeta.replace(/\/*$/, "/"), document.baseURI); // …/api/system/
const hostsMeta = document.querySelector('meta[name="sysstream-hosts"]').content;
// …/api/hosts/ on a fleet server; null on a single server (nothing to ask for).
const hostsBase = hostsMeta ? new URL(hostsMeta.replace(/\/*$/, "/"), document.baseURI) : null;

const $ = (id) => document.getElementById(id);

const page = {
  host: null, // null: this server; otherwise a fleet host id
  window: WINDOWS.includes(Number(localStorage.getItem(WINDOW_KEY)))
    ? Number(localStorage.getItem(WINDOW_KEY))
    : 300,
  paused: false,
  frozenRange: null,
  schema: null,
  groups: [],
  interval: 1, // the stream's interval
  step: null, // seconds per point on the stored windows (bucketed ticks), else null
  buckets: null, // Buckets filling the newest point on the stored windows
  timeline: new Timeline(),
  latest: {},
  cards: new Map(),
  receivedAt: null, // performance.now() of the last data message
  drawPending: false,
  theme: null,
  firstDrawn: null, // { first, points } of the first draw with points (for the tests)
  lastHistory: null, // { first, last, count } of the stream's last history message
  containers: null, // the Containers panel (containers.js), when the server has the group
};

// ---- URLs: everything the page talks to derives from apiBase and the selected host ----

function metricsUrl(host, suffix = "") {
  const base = host == null ? apiBase : new URL(`${encodeURIComponent(host)}/`, hostsBase);
  return new URL(`metrics${suffix}`, base);
}

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

function streamUrl() {
  const url = metricsUrl(page.host);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  url.searchParams.set("fields", page.groups.join(","));
  if (page.interval !== page.schema.interval) url.searchParams.set("interval", String(page.interval));
  const history = historySeconds();
  if (history > 0) url.searchParams.set("history", String(history));
  if (alerts.url) url.searchParams.set("alerts", "1"); // opt-in alert messages (docs/alerts.md)
  if (token()) url.searchParams.set("token", token());
  return url.href;
}

/** On open: the whole window. On reconnect: the gap since the last message, so the
 * history message backfills exactly what was missed (measured on the page's monotonic
 * clock, immune to clock skew between browser and server). Never more than the server's
 * ring holds; nothing on a stored window, whose points come from the store (fetchWindow). */
function historySeconds() {
  if (page.step !== null) return 0;
  const ring = page.schema.historySeconds;
  if (!page.timeline.length || page.receivedAt === null) return Math.min(page.window, ring);
  const gap = (performance.now() - page.receivedAt) / 1000 + 2 * page.interval;
  return Math.min(page.window, ring, Math.ceil(gap));
}

export async function fetchJson(url) {
  const headers = token() ? { Authorization: `Bearer ${token()}` } : {};
  const response = await fetch(url, { headers, cache: "no-store", signal: AbortSignal.timeout(10000) });
  return response;
}

/** The stream interval for a window: the server tick, coarser when it would exceed
 * MAX_POINTS. A stored window takes every tick: its newest point is their average over the
 * bucket (what the store computes), and the numbers beside the charts stay live. */
function intervalFor(windowSeconds) {
  const tick = page.schema.interval;
  if (isStored(windowSeconds)) return tick;
  const k = Math.max(1, Math.ceil(windowSeconds / MAX_POINTS / tick));
  return Math.round(k * tick * 1e6) / 1e6;
}

function isStored(windowSeconds) {
  return windowSeconds > LIVE_WINDOW;
}

function stepFor(windowSeconds) {
  if (!isStored(windowSeconds)) return null;
  return STORE_STEPS.find((step) => windowSeconds / step <= MAX_POINTS) ?? STORE_STEPS.at(-1);
}

/** The stored windows need the server's history store, which fleet hosts' routes do not
 * read. */
function storeAvailable() {
  return Boolean(page.schema?.store) && page.host == null;
}

/** Seconds between the timeline's points. */
function resolution() {
  return page.step ?? page.interval;
}

// ---- Data in ----

/** One tick: a point of its own, or on a stored window, into its bucket's point. */
function ingest(time, row) {
  const gap = 3.5 * resolution();
  if (page.buckets) page.buckets.add(page.timeline, time, extractAll(row), { gap });
  else page.timeline.push(time, extractAll(row), { step: page.interval, gap });
}

/** A history body (the stream's history message or GET …/history): ticks go through
 * ingest; aggregated points (with `min` and `max`) are points as they are, bands included. */
function ingestHistory(body) {
  const times = body.timestamps ?? [];
  const aggregated = body.min != null && body.max != null;
  const rowAt = (columns, i) => {
    const row = {};
    for (const field in columns) row[field] = columns[field][i];
    return row;
  };
  let row = null;
  for (let i = 0; i < times.length; i += 1) {
    row = rowAt(body.values ?? {}, i);
    if (!aggregated) {
      ingest(times[i], row);
      continue;
    }
    const values = extractBands(rowAt(body.min, i), rowAt(body.max, i), extractAll(row));
    page.timeline.push(times[i], values, { step: resolution(), gap: 3.5 * resolution() });
  }
  if (row && !page.latest.timestamp) Object.assign(page.latest, row);
}

function onMessage(message) {
  if (alerts.receive(message)) return;
  if (message.type === "history") {
    const times = message.timestamps ?? [];
    page.lastHistory = { first: times[0] ?? null, last: times.at(-1) ?? null, count: times.length };
    ingestHistory(message);
  } else if (message.type === "subscribed") {
    return;
  } else if (typeof message.timestamp === "string" && !("error" in message)) {
    const time = Date.parse(message.timestamp) / 1000;
    page.receivedAt = performance.now();
    ingest(time, message);
    page.latest = message;
    setStale(false);
    page.containers?.update(message);
    // The Containers panel says itself why it is incomplete (no daemon on this host).
    const errors = Object.entries(message.errors ?? {}).filter(([group]) => group !== "containers");
    showNotice(errors.length ? errors.map(([, text]) => text).join("; ") : null);
  } else if (message.error) {
    page.receivedAt = performance.now();
    setStale(true); // an offline fleet host: its last values stay, greyed
    showNotice(message.error);
  }
  trim();
  requestDraw();
}

function trim() {
  if (page.paused) return; // the frozen charts still point into these arrays
  const { timeline } = page;
  if (timeline.length < 2) return;
  const slack = Math.max(10 * resolution(), page.window * 0.05);
  if (timeline.first < timeline.last - page.window - slack) {
    timeline.trim(timeline.last - page.window - resolution());
  }
}

// ---- Drawing ----

function xRange() {
  if (page.frozenRange) return page.frozenRange;
  const last = page.timeline.last ?? Date.now() / 1000;
  return [last - page.window, last];
}

function requestDraw() {
  if (page.drawPending || page.paused) return;
  page.drawPending = true;
  requestAnimationFrame(() => {
    page.drawPending = false;
    draw();
  });
}

function draw() {
  const { timeline, latest } = page;
  const live = extractAll(latest);
  for (const panel of PANELS) {
    let card = page.cards.get(panel.id);
    if (!card) {
      if (panel.optional && !panel.series(timeline, page.schema).length) continue;
      if (!panel.groups.every((g) => page.schema.has(g))) continue;
      card = new Card(panel, page.schema, {
        xRange,
        window: () => page.window,
        get theme() {
          return page.theme;
        },
      });
      page.cards.set(panel.id, card);
      const order = PANELS.map((p) => p.id);
      const before = [...page.cards.values()].find(
        (c) => order.indexOf(c.panel.id) > order.indexOf(panel.id) && c.root.isConnected,
      );
      $("cards").insertBefore(card.root, before?.root ?? $("processes"));
    }
    card.draw(timeline);
    card.update(latest, timeline, live);
    alerts.decorate(card, xRange(), page.host);
  }
  processes.update(latest.processes);
  if (typeof latest.uptime === "number") $("uptime").textContent = `up ${duration(latest.uptime)}`;
  if (latest.timestamp) {
    $("last-update").textContent = `last sample ${clockTime(new Date(latest.timestamp))}`;
  }
  if (!page.firstDrawn && timeline.length) page.firstDrawn = { first: timeline.first, points: timeline.length };
  document.body.dataset.points = String(timeline.length);
}

/** Greyed while the numbers are not live (lost connection, offline fleet host). */
function setStale(stale) {
  document.body.classList.toggle("stale", stale);
}

// ---- Status, notices, token ----

let countdown = null;

function onState(stream) {
  const status = $("status");
  status.dataset.state = stream.state;
  status.title = stream.detail;
  clearInterval(countdown);
  const text = $("status-text");
  if (stream.state !== State.LIVE && stream.state !== State.CONNECTING) setStale(true);
  if (stream.state === State.LIVE) {
    text.textContent = `Live · ${page.interval < 1 ? `${page.interval * 1000} ms` : `${page.interval} s`}`;
    $("notice").hidden = true;
  } else if (stream.state === State.CONNECTING) {
    text.textContent = "Connecting…";
  } else if (stream.state === State.UNAUTHORIZED) {
    text.textContent = "Token required";
    askToken(stream.detail === "token rejected");
  } else if (stream.state === State.RECONNECTING) {
    const tick = () => {
      const left = Math.max(0, Math.ceil((stream.retryAt - performance.now()) / 1000));
      text.textContent = left > 0 ? `Reconnecting in ${left} s` : "Reconnecting…";
    };
    tick();
    countdown = setInterval(tick, 250);
    if (page.receivedAt !== null) {
      const since = clockTime(new Date(Date.now() - (performance.now() - page.receivedAt)));
      showNotice(`Connection lost (${stream.detail}) — no data since ${since}. The gap fills in when the server is back.`);
    }
  } else {
    text.textContent = "Closed";
  }
}

function showNotice(text) {
  const notice = $("notice");
  notice.hidden = !text;
  if (text && notice.textContent !== text) notice.textContent = text;
}

function askToken(rejected) {
  const dialog = $("token-dialog");
  $("token-error").hidden = !rejected;
  if (!dialog.open) dialog.showModal();
  $("token-input").focus();
}

$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const value = $("token-input").value.trim();
  if (!value) return;
  sessionStorage.setItem(TOKEN_KEY, value);
  $("token-dialog").close();
  stream.retry();
});

// ---- Controls ----

function selectWindow(seconds, { store = true } = {}) {
  const previous = page.window;
  const previousStep = page.step;
  page.window = seconds;
  if (store) localStorage.setItem(WINDOW_KEY, String(seconds));
  for (const button of $("window").querySelectorAll("button")) {
    button.setAttribute("aria-checked", String(Number(button.dataset.seconds) === seconds));
  }
  if (!page.schema) return;
  page.step = stepFor(seconds);
  if (page.step !== previousStep) {
    // Points of another resolution would be drawn as if they were of this one (ticks in
    // a bucketed window, buckets in a live one): start over from the fetch below.
    page.buckets = page.step === null ? null : new Buckets(page.step, BAND_KEYS);
    page.timeline = new Timeline(); // a new object: frozen (paused) charts keep the old one
  }
  const interval = intervalFor(seconds);
  if (interval !== page.interval) {
    page.interval = interval;
    stream.send({ type: "subscribe", fields: page.groups, interval });
    stream.setStallTimeout(5000 * interval);
    onState(stream);
  }
  // A wider window needs older points than the stream sent, and a new resolution needs
  // every point again: fetch the window once.
  if (seconds > previous || page.step !== previousStep) backfillWindow(seconds);
  requestDraw();
}

/** Show the stored windows where they can be read; leave one that cannot (a server that
 * restarted without its store, a fleet host) for the longest live window. */
function showStoredWindows() {
  const available = storeAvailable();
  for (const button of $("window").querySelectorAll("button[data-store]")) button.hidden = !available;
  if (isStored(page.window) && !available) selectWindow(LIVE_WINDOW, { store: false });
}

/** Fetch the window's points: the stream's ticks from the ring, or on a stored window,
 * buckets of `page.step` from the store (with min and max, for the bands). */
async function backfillWindow(seconds) {
  // A live window reads the ring, which refuses more than it holds (--history-seconds; a
  // fleet host's too): ask for what it has. Stored windows read the store, which has no
  // such bound.
  const span = page.step === null ? Math.min(seconds, page.schema.historySeconds) : seconds;
  if (span <= 0) return;
  const url = metricsUrl(page.host, "/history");
  url.searchParams.set("seconds", String(span));
  const charted = page.groups.filter((g) => g !== "processes" && g !== "containers");
  url.searchParams.set("fields", charted.join(","));
  const step = page.step;
  if (step !== null) url.searchParams.set("step", String(step));
  let body;
  try {
    const response = await fetchJson(url);
    if (!response.ok) return;
    body = await response.json();
  } catch {
    return;
  }
  if (page.window !== seconds || page.step !== step) return; // the user moved on
  if (step !== null && body.step > step) {
    // The range reached a coarser tier than asked (short retention settings): draw at its step.
    page.step = body.step;
    page.buckets = new Buckets(page.step, BAND_KEYS);
  }
  const live = [...page.timeline.points()];
  page.timeline = new Timeline();
  ingestHistory(body);
  // Points that arrived while the request was out and are newer than the answer; older
  // ones (other resolutions included) are dropped by push. On a stored window, a bucket
  // the answer already holds stays the store's, so the bucket filling up is forgotten.
  const newest = page.timeline.last ?? -Infinity;
  if (page.buckets && page.buckets.start !== null && page.buckets.start <= newest) {
    page.buckets = new Buckets(page.step, BAND_KEYS);
  }
  for (const [time, values] of live) {
    page.timeline.push(time, values, { step: resolution(), gap: 3.5 * resolution() });
  }
  trim();
  requestDraw();
}

function setPaused(paused) {
  page.paused = paused;
  page.frozenRange = paused ? xRange() : null;
  const button = $("pause");
  button.setAttribute("aria-pressed", String(paused));
  button.querySelector("span").textContent = paused ? "Resume" : "Pause";
  document.body.classList.toggle("paused", paused);
  if (!paused) {
    trim();
    requestDraw();
  }
}

$("window").addEventListener("click", (event) => {
  const button = event.target.closest("button[data-seconds]");
  if (button) selectWindow(Number(button.dataset.seconds));
});
$("pause").addEventListener("click", () => setPaused(!page.paused));
document.addEventListener("keydown", (event) => {
  if (event.key === " " && event.target === document.body) {
    event.preventDefault();
    setPaused(!page.paused);
  }
});

const darkQuery = matchMedia("(prefers-color-scheme: dark)");
darkQuery.addEventListener("change", () => {
  page.theme = theme();
  for (const card of page.cards.values()) card.restyle(page.timeline);
  requestDraw();
});

// ---- Host selection (fleet mode) ----

function selectHost(host) {
  if (host === page.host) return;
  page.host = host;
  page.timeline = new Timeline();
  page.latest = {};
  page.receivedAt = null;
  for (const card of page.cards.values()) card.destroy();
  page.cards.clear();
  setStale(false);
  showHost();
  processes.reset();
  showStoredWindows();
  stream.close();
  stream.start();
}

/** The top bar names the host: this server's host name (from the schema), or the fleet
 * host's id. */
function showHost() {
  $("host").textContent = page.host ?? page.schema?.hostname ?? location.host;
}

const processes = new ProcessPanel({
  fetchJson,
  schema: () => page.schema,
  // Every process is listed by this server for itself: not for a fleet host.
  listUrl: () => (page.host == null && page.schema?.processesRoute ? metricsUrl(null, "/processes") : null),
});

// ---- Start ----

// Every metric's unit from the schemas seen: an alert's metric keeps its unit when the
// host on screen (a fleet host's schema) does not publish that group.
const units = new Map();

const alertsMeta = document.querySelector('meta[name="sysstream-alerts"]').content;
const alerts = new Alerts({
  // …/api/alerts where the server evaluates alerts; null where it does not.
  url: alertsMeta ? new URL(alertsMeta.replace(/\/*$/, ""), document.baseURI) : null,
  fetchJson,
  token,
  onChange: () => page.schema && requestDraw(),
  unit: (path) => units.get(path) ?? null,
});

const stream = new Stream({
  // The selected host's own schema: a fleet host has its agent's interval (every stream
  // interval the page asks for must be a multiple of it) and only the groups it publishes.
  probeUrl: () => metricsUrl(page.host, "/schema").href,
  streamUrl,
  token,
  onProbe(body) {
    const schema = new Schema(body);
    const first = page.schema === null;
    page.schema = schema;
    for (const [path, metric] of schema.metrics) units.set(path, metric.unit);
    alerts.unitsChanged();
    page.groups = subscribedGroups(schema);
    if (schema.has("containers")) page.groups.push("containers");
    if (first && schema.has("containers")) page.containers = new ContainersPanel($("processes"), schema);
    page.interval = intervalFor(page.window);
    stream.setStallTimeout(5000 * page.interval);
    if (first) document.getElementById("processes-title").textContent = schema.title("processes");
    showHost();
    if (first) processes.reset();
    showStoredWindows();
    if (first) selectWindow(page.window, { store: false }); // the points and step it needs
    // A stored window is refilled from the store on every (re)connect: the stream sends
    // such windows no history, and the store holds what happened while we were away.
    else if (page.step !== null) backfillWindow(page.window);
  },
  onMessage,
  onState,
});

page.theme = theme();
showHost();
selectWindow(page.window);
addEventListener("online", () => stream.retry());
stream.start();
alerts.start();
if (hostsBase) new Fleet({
  hostsBase,
  fetchJson,
  format: (field) => formatter(page.schema?.has(field) ? page.schema.unit(field) : ""),
  onSelect: selectHost,
}).start();

// Read-only handle for tests and the heap benchmark.
window.sysstreamDashboard = {
  get state() { return stream.state; },
  get points() { return page.timeline.length; },
  get series() { return page.timeline.columns.size; },
  get interval() { return page.interval; },
  get step() { return resolution(); },
  get window() { return page.window; },
  get firstTimestamp() { return page.timeline.first; },
  /** [time, value] of every point of a series that has a value (a copy). */
  values(key) {
    const column = page.timeline.column(key) ?? [];
    return page.timeline.times.map((t, i) => [t, column[i]]).filter(([, v]) => v != null);
  },
  get lastTimestamp() { return page.timeline.last; },
  get firstDrawn() { return page.firstDrawn; },
  get lastHistory() { return page.lastHistory; },
  /** Times of the null points that break the lines (outages). */
  breaks() {
    const keys = [...page.timeline.columns.keys()];
    return page.timeline.times.filter((_, i) => keys.every((k) => page.timeline.columns.get(k)[i] === null));
  },
  /** The tick labels of a chart's axes as drawn: { x: [...], y: [...] }. */
  axisTicks(panel) {
    const card = page.cards.get(panel);
    return { x: card?.xTicks ?? [], y: card?.yTicks ?? [] };
  },
  /** Milliseconds until the next reconnection attempt, or null. */
  get retryIn() { return stream.retryAt === null ? null : stream.retryAt - performance.now(); },
};
