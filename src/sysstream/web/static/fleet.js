// Fleet mode: when GET …/api/hosts answers 200, a host picker and an overview (one row per
// host: status and cpu/memory/disk sparklines). The sparklines of every host come in one
// request (GET …/api/hosts/history, thinned to SPARK_POINTS per host), not one per host:
// 2,000 hosts are one request per refresh. An offline host's row keeps its last values,
// greyed, with when it was last seen. On 404 (a single server) nothing here is shown.

const FIELDS = ["cpu", "memory", "disk"];
const SPARK_POINTS = 60; // a 120-pixel sparkline needs no more
const REFRESH_MS = 30000; // the overview only; each host's live data comes over its stream

function sparkline(values) {
  const width = 120;
  const height = 28;
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("class", "spark");
  const points = values
    .map((v, i) => (typeof v === "number" ? `${((i / Math.max(1, values.length - 1)) * width).toFixed(1)},${(height - (v / 100) * height).toFixed(1)}` : null))
    .filter(Boolean);
  const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
  line.setAttribute("points", points.join(" "));
  svg.append(line);
  return svg;
}

export class Fleet {
  constructor({ hostsBase, fetchJson, format, onSelect }) {
    this.hostsBase = hostsBase;
    this.format = format; // field → value printer, from the registry's unit
    this.fetchJson = fetchJson;
    this.onSelect = onSelect;
    this.timer = null;
  }

  async start() {
    const hosts = await this.#hosts();
    if (hosts === null) return; // not a fleet server: keep it all hidden
    document.getElementById("fleet").hidden = false;
    document.getElementById("host-picker").hidden = false;
    const select = document.getElementById("host-select");
    select.replaceChildren(new Option("This server", ""));
    for (const host of hosts) select.append(new Option(host.id, host.id));
    select.addEventListener("change", () => this.onSelect(select.value || null));
    await this.#render(hosts);
    this.timer = setInterval(async () => {
      if (document.hidden) return;
      const fresh = await this.#hosts();
      if (fresh) await this.#render(fresh);
    }, REFRESH_MS);
  }

  async #hosts() {
    try {
      const response = await this.fetchJson(new URL(this.hostsBase.href.replace(/\/$/, "")));
      if (!response.ok) return null;
      const body = await response.json();
      return Array.isArray(body.hosts) ? body.hosts : null;
    } catch {
      return null;
    }
  }

  async #render(hosts) {
    const histories = await this.#histories();
    const rows = hosts.map((host) => this.#row(host, histories?.[host.id] ?? null));
    document.getElementById("fleet-rows").replaceChildren(...rows);
  }

  /** Every host's last 5 minutes of cpu/memory/disk (the route's default, or what the
   * hub keeps if less), in one request; null if it failed. */
  async #histories() {
    try {
      const url = new URL("history", this.hostsBase);
      url.searchParams.set("fields", FIELDS.join(","));
      url.searchParams.set("points", String(SPARK_POINTS));
      const response = await this.fetchJson(url);
      if (!response.ok) return null;
      const body = await response.json();
      return body.hosts ?? null;
    } catch {
      return null;
    }
  }

  #row(host, history) {
    const tr = document.createElement("tr");
    const online = host.status === "online"; // GET /api/hosts: "online" | "offline"
    tr.className = online ? "online" : "offline";
    tr.dataset.host = host.id;
    const name = document.createElement("td");
    const link = document.createElement("button");
    link.type = "button";
    link.className = "link";
    link.textContent = host.id;
    link.addEventListener("click", () => {
      document.getElementById("host-select").value = host.id;
      this.onSelect(host.id);
    });
    name.append(link);
    const status = document.createElement("td");
    status.className = `host-status ${online ? "online" : "offline"}`;
    status.textContent = online ? "online" : "offline";
    if (!online && host.last_seen) {
      const seen = document.createElement("small");
      seen.textContent = ` · last seen ${ago(Date.parse(host.last_seen))}`;
      status.append(seen);
    }
    if (host.last_seen) status.title = `last seen ${new Date(host.last_seen).toLocaleString()}`;
    tr.append(name, status);
    for (const field of FIELDS) {
      const td = document.createElement("td");
      td.className = "spark-cell";
      const values = history?.values?.[field] ?? [];
      td.append(sparkline(values));
      const now = document.createElement("span");
      now.className = "num";
      now.textContent = this.format(field)(host[field]);
      td.append(now);
      tr.append(td);
    }
    return tr;
  }
}

/** "12 s ago", "5 min ago", "3 h ago". */
function ago(time) {
  const seconds = Math.max(0, Math.round((Date.now() - time) / 1000));
  if (!Number.isFinite(seconds)) return "a while ago";
  if (seconds < 90) return `${seconds} s ago`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min ago`;
  return `${Math.round(seconds / 3600)} h ago`;
}
