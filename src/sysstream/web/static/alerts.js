// Alerts on the dashboard: the active set at the top of the page, a badge on each panel
// an alert concerns, markers on its chart where alerts fired and resolved, silencing from
// the page, and each host's worst severity in the fleet overview. The data comes from
// GET …/api/alerts (and its history) and from the stream's opt-in alert messages
// (docs/alerts.md); nothing here draws unless the server evaluates alerts.

import { formatter } from "./format.js";
import { PANELS } from "./panels.js";

const REFRESH_MS = 30000;
const HISTORY_SECONDS = 7 * 86400;
const MAX_MARKERS = 2000;
const SILENCE_SECONDS = 3600;
const RANK = { critical: 2, warning: 1 };

const el = (tag, className, text) => {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text != null) node.textContent = text;
  return node;
};

/** The dashboard panel that shows a rule's metric: the one whose groups hold its head. */
function panelOf(metric) {
  const head = metric.split(".")[0];
  const panel = PANELS.find((p) => p.groups.includes(head));
  return panel?.id ?? null;
}

function where(labels) {
  return Object.entries(labels)
    .map(([key, value]) => (key === "host" ? value : `${key}=${value}`))
    .join(", ");
}

function number(value) {
  if (typeof value !== "number") return "–";
  return Math.abs(value) >= 100 ? value.toFixed(0) : String(Math.round(value * 10) / 10);
}

export class Alerts {
  /**
   * @param {object} options
   * @param {URL|null} options.url     …/api/alerts, or null where the server has no alerts
   * @param {(url: URL|string, init?: object) => Promise<Response>} options.fetchJson
   * @param {() => string|null} options.token
   * @param {() => void} options.onChange  the charts should be redrawn
   * @param {(path: string) => string|null} options.unit  a metric's unit, from the schema
   */
  constructor({ url, fetchJson, token, onChange, unit }) {
    this.url = url;
    this.fetchJson = fetchJson;
    this.token = token;
    this.onChange = onChange;
    this.unit = unit;
    this.enabled = false;
    this.begun = false;
    this.rules = new Map(); // name → rule
    this.active = new Map(); // fingerprint → alert
    this.events = []; // transitions, oldest first: the chart markers
    this.root = document.getElementById("alerts");
    this.list = el("ul", "alert-list");
    this.root?.append(el("h2", null, "Active alerts"), this.list);
    this.fleetRows = document.getElementById("fleet-rows");
    if (this.fleetRows) {
      new MutationObserver(() => this.#decorateFleet()).observe(this.fleetRows, { childList: true });
    }
  }

  async start() {
    if (!this.url) return;
    await this.refresh();
    if (this.enabled) this.#begin();
  }

  /** Once the server is known to evaluate alerts (the API answered, or the stream sent
   * the active set after a token was entered): markers from history, periodic refresh. */
  #begin() {
    if (this.begun) return;
    this.begun = true;
    this.#loadHistory();
    setInterval(() => this.refresh(), REFRESH_MS);
  }

  async refresh() {
    let response;
    try {
      response = await this.fetchJson(this.url);
    } catch {
      return; // offline: the stream's status line says so
    }
    if (!response.ok) return; // 404: no alerts on this server; 401: the token dialog asks
    const body = await response.json();
    this.enabled = true;
    this.rules = new Map(body.rules.map((rule) => [rule.name, rule]));
    this.#replaceActive(body.active);
  }

  async #loadHistory() {
    const url = new URL(`${this.url.href}/history`);
    url.searchParams.set("seconds", String(HISTORY_SECONDS));
    try {
      const response = await this.fetchJson(url);
      if (!response.ok) return;
      const body = await response.json();
      this.events = body.events.filter((e) => e.event === "firing" || e.event === "resolved");
      this.events = this.events.slice(-MAX_MARKERS);
    } catch {
      return;
    }
    this.onChange();
  }

  /** A stream message: true when it was an alert message (handled here). */
  receive(message) {
    if (message.type === "alerts") {
      this.enabled = true;
      this.#replaceActive(message.active);
      if (!this.begun) this.refresh().then(() => this.#begin());
      return true;
    }
    if (message.type !== "alert") return false;
    if (message.event === "firing" || message.event === "resolved") {
      this.events.push(message);
      if (this.events.length > MAX_MARKERS) this.events.shift();
    }
    // The stream says what changed; the API gives the set with `silenced` flags.
    if (message.event !== "repeat") this.refresh();
    return true;
  }

  /** The units are known (a schema arrived): print the values again. */
  unitsChanged() {
    this.#render();
    this.#decorateFleet();
    this.onChange();
  }

  /** "90.4% vs 80%", "1.20 MiB/s vs 1 MiB/s": an alert's (or event's) value and threshold
   * in the unit of its rule's metric, as the charts print it; bare numbers for a metric
   * outside the registry (host.offline) or before the rules and schema are in. */
  measured(alert) {
    const metric = this.rules.get(alert.rule)?.metric;
    const unit = metric == null ? null : this.unit(metric);
    if (!unit) return `${number(alert.value)} vs ${number(alert.threshold)}`;
    return `${formatter(unit)(alert.value)} vs ${formatter(unit, { trim: true })(alert.threshold)}`;
  }

  #replaceActive(list) {
    this.active = new Map(list.map((alert) => [alert.fingerprint, alert]));
    this.#render();
    this.#decorateFleet();
    this.onChange();
  }

  // ---- The list at the top ----

  #render() {
    if (!this.root) return;
    const alerts = [...this.active.values()];
    this.root.hidden = alerts.length === 0;
    this.root.dataset.worst = worst(alerts) ?? "";
    this.list.replaceChildren(...alerts.map((alert) => this.#item(alert)));
  }

  #item(alert) {
    const item = el("li", "alert");
    item.dataset.severity = alert.severity ?? "";
    item.dataset.state = alert.state;
    item.dataset.rule = alert.rule;
    if (alert.silenced) item.dataset.silenced = "";
    const severity = el("span", "severity", alert.state === "pending" ? "pending" : alert.severity);
    const name = el("strong", "rule", alert.rule);
    const place = el("span", "where", where(alert.labels));
    const value = el("span", "value", this.measured(alert));
    const since = el("time", "since", `since ${new Date(alert.since).toLocaleTimeString()}`);
    since.dateTime = alert.since;
    item.append(severity, name, place, value, since);
    if (alert.summary) item.title = alert.summary;
    if (alert.silenced) {
      item.append(el("span", "silenced", "silenced"));
    } else if (alert.state === "firing") {
      const button = el("button", "silence", "Silence 1 h");
      button.type = "button";
      button.addEventListener("click", () => this.silence(alert, button));
      item.append(button);
    }
    return item;
  }

  async silence(alert, button) {
    button.disabled = true;
    const matchers = { rule: alert.rule, ...alert.labels };
    const headers = { "Content-Type": "application/json" };
    if (this.token()) headers.Authorization = `Bearer ${this.token()}`;
    try {
      const response = await fetch(`${this.url.href}/silences`, {
        method: "POST",
        headers,
        body: JSON.stringify({ matchers, duration: SILENCE_SECONDS, comment: "from the dashboard" }),
        signal: AbortSignal.timeout(10000),
      });
      if (!response.ok) {
        const body = await response.json().catch(() => ({}));
        button.textContent = response.status === 401 ? "Not authorised" : body.error ?? "Failed";
        return;
      }
    } catch {
      button.textContent = "Failed";
      return;
    }
    await this.refresh();
  }

  // ---- Panels: badges and markers ----

  /** Badge and markers on one dashboard card, for the host on screen. */
  decorate(card, [start, end], host) {
    if (!this.enabled) return;
    const shown = host ?? "local";
    const mine = (labels) => labels.host === shown;
    const panelFor = (ruleName) => {
      const rule = this.rules.get(ruleName);
      return rule ? panelOf(rule.metric) : null;
    };
    const here = [...this.active.values()].filter(
      (a) => mine(a.labels) && a.state === "firing" && panelFor(a.rule) === card.panel.id,
    );
    this.#badge(card, worst(here), here.map((a) => `${a.rule} ${where(a.labels)}: ${this.measured(a)}`));
    const plot = card.plot;
    if (!plot?.over) return;
    let layer = plot.over.querySelector(".alert-markers");
    if (!layer) {
      layer = el("div", "alert-markers");
      plot.over.append(layer);
    }
    const markers = [];
    for (const event of this.events) {
      const time = Date.parse(event.at) / 1000;
      if (time < start || time > end || !mine(event.labels)) continue;
      if (panelFor(event.rule) !== card.panel.id) continue;
      const marker = el("div", "alert-marker");
      marker.dataset.event = event.event;
      marker.dataset.severity = event.severity ?? "";
      marker.style.left = `${plot.valToPos(time, "x")}px`;
      marker.title =
        `${event.rule} ${event.event} ${where(event.labels)} at ${new Date(event.at).toLocaleTimeString()}: ` +
        this.measured(event);
      markers.push(marker);
    }
    layer.replaceChildren(...markers);
  }

  #badge(card, severity, lines) {
    const head = card.root.querySelector("h2");
    let badge = card.root.querySelector(".alert-badge");
    if (!severity) {
      badge?.remove();
      delete card.root.dataset.alert;
      return;
    }
    if (!badge) {
      badge = el("span", "alert-badge");
      head?.after(badge);
    }
    badge.textContent = severity;
    badge.dataset.severity = severity;
    badge.title = lines.join("\n");
    card.root.dataset.alert = severity;
  }

  // ---- Fleet overview: each host's worst active severity ----

  #decorateFleet() {
    if (!this.fleetRows) return;
    const byHost = new Map();
    const lines = new Map(); // host → its firing alerts, with their values
    for (const alert of this.active.values()) {
      if (alert.state !== "firing") continue;
      const host = alert.labels.host;
      byHost.set(host, worst([{ severity: byHost.get(host) }, alert]));
      // The row names the host; the badge's title names the rest.
      const labels = Object.fromEntries(Object.entries(alert.labels).filter(([key]) => key !== "host"));
      const place = Object.keys(labels).length ? ` ${where(labels)}` : "";
      lines.set(host, [...(lines.get(host) ?? []), `${alert.rule}${place}: ${this.measured(alert)}`]);
    }
    for (const row of this.fleetRows.rows) {
      const cell = row.cells[0];
      if (!cell) continue;
      const host = cell.dataset.host ?? cell.textContent.trim();
      cell.dataset.host = host;
      const severity = byHost.get(host);
      let badge = cell.querySelector(".alert-badge");
      if (!severity) {
        badge?.remove();
        continue;
      }
      if (!badge) {
        badge = el("span", "alert-badge");
        cell.append(badge);
      }
      badge.textContent = severity;
      badge.dataset.severity = severity;
      badge.title = lines.get(host).join("\n");
    }
  }
}

function worst(alerts) {
  let found = null;
  for (const alert of alerts) {
    if (alert.severity && (RANK[alert.severity] ?? 0) > (RANK[found] ?? 0)) found = alert.severity;
  }
  return found;
}
