// Fleet mode: when GET …/api/hosts answers 200, a host picker and an overview (one row per
// host: status and cpu/memory/disk sparklines from each host's history). On 404 (a single
// server) nothing here is shown.

const FIELDS = ["cpu", "memory", "disk"];
const SPARK_SECONDS = 300;
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
  constructor({ hostsBase, fetchJson, metricsUrl, format, onSelect }) {
    this.hostsBase = hostsBase;
    this.format = format; // field → value printer, from the registry's unit
    this.fetchJson = fetchJson;
    this.metricsUrl = metricsUrl;
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
    const rows = await Promise.all(hosts.map((host) => this.#row(host)));
    document.getElementById("fleet-rows").replaceChildren(...rows);
  }

  async #row(host) {
    const tr = document.createElement("tr");
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
    const online = host.status === "online"; // GET /api/hosts: "online" | "offline"
    status.className = `host-status ${online ? "online" : "offline"}`;
    status.textContent = online ? "online" : "offline";
    if (host.last_seen) status.title = `last seen ${host.last_seen}`;
    tr.append(name, status);
    let history = null;
    try {
      const url = this.metricsUrl(host.id, "/history");
      url.searchParams.set("seconds", String(SPARK_SECONDS));
      url.searchParams.set("fields", FIELDS.join(","));
      const response = await this.fetchJson(url);
      if (response.ok) history = await response.json();
    } catch {
      history = null;
    }
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
