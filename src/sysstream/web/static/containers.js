// The Containers panel: one row per running container of the `containers` group, with CPU
// and memory sparklines, state and health, sortable by any column. Hidden while the group
// is unavailable (no such group, no cgroups, or no daemon and no container to show).
// Units come from the registry (schema.js); figures from each stream message.

import { formatter } from "./format.js";

const HISTORY = 60; // sparkline points per container
const SPARK_WIDTH = 72;
const SPARK_HEIGHT = 20;
const SVG = "http://www.w3.org/2000/svg";

// column → how to read its sort key from an entry (text columns sort A→Z, numbers high→low)
const COLUMNS = [
  { key: "name", label: "Name", value: (c) => c.name ?? "", text: true },
  { key: "state", label: "State", value: (c) => `${c.state ?? ""} ${c.health ?? ""}`, text: true },
  { key: "cpu", label: "CPU", value: (c) => c.cpu_percent ?? -1, num: true },
  { key: "memory", label: "Memory", value: (c) => c.memory_bytes ?? -1, num: true },
  { key: "net", label: "Net rx / tx", value: (c) => (c.net_rx_bytes_per_s ?? 0) + (c.net_tx_bytes_per_s ?? 0), num: true },
  { key: "block", label: "Block r / w", value: (c) => (c.block_read_bytes_per_s ?? 0) + (c.block_write_bytes_per_s ?? 0), num: true },
  { key: "pids", label: "PIDs", value: (c) => c.pids ?? -1, num: true },
  { key: "uptime", label: "Up", value: (c) => c.uptime_seconds ?? -1, num: true },
];

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text != null) node.textContent = text;
  return node;
}

function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

/** A sparkline of the last HISTORY values, scaled to `top` (or to its own maximum). */
class Sparkline {
  constructor() {
    this.values = [];
    this.svg = document.createElementNS(SVG, "svg");
    this.svg.setAttribute("class", "spark");
    this.svg.setAttribute("viewBox", `0 0 ${SPARK_WIDTH} ${SPARK_HEIGHT}`);
    this.svg.setAttribute("preserveAspectRatio", "none");
    this.svg.setAttribute("aria-hidden", "true");
    this.line = document.createElementNS(SVG, "polyline");
    this.svg.append(this.line);
  }

  push(value, top) {
    this.values.push(typeof value === "number" && Number.isFinite(value) ? value : null);
    if (this.values.length > HISTORY) this.values.shift();
    const known = this.values.filter((v) => v !== null);
    const scale = top ?? Math.max(...known, 1);
    const step = SPARK_WIDTH / (HISTORY - 1);
    const offset = HISTORY - this.values.length;
    const points = [];
    this.values.forEach((v, i) => {
      if (v === null) return;
      const y = SPARK_HEIGHT - Math.min(v / scale, 1) * (SPARK_HEIGHT - 2) - 1;
      points.push(`${((offset + i) * step).toFixed(1)},${y.toFixed(1)}`);
    });
    this.line.setAttribute("points", points.join(" "));
    this.svg.dataset.points = String(points.length);
  }
}

export class ContainersPanel {
  /** `before`: the element the panel goes in front of. */
  constructor(before, schema) {
    this.schema = schema;
    this.rows = new Map(); // short id → { tr, cells, cpu: Sparkline, memory: Sparkline }
    this.sort = { key: "cpu", descending: true };
    this.latest = {};
    const unit = (field) => formatter(schema.unit(`containers.*.${field}`));
    this.format = {
      percent: unit("cpu_percent"),
      bytes: unit("memory_bytes"),
      rate: unit("net_rx_bytes_per_s"),
      uptime: unit("uptime_seconds"),
      pids: unit("pids"),
    };
    this.root = this.build(schema);
    this.root.hidden = true;
    before.parentNode.insertBefore(this.root, before);
  }

  build(schema) {
    const root = element("section", "card containers");
    root.id = "containers";
    root.dataset.panel = "containers";
    const head = element("header", "card-head");
    const title = element("h2", null, schema.title("containers"));
    title.title = schema.description("containers");
    this.summary = element("span", "sub");
    head.append(title, this.summary);
    const wrap = element("div", "table-wrap");
    const table = element("table", "container-table");
    const headRow = element("tr");
    for (const column of COLUMNS) {
      const th = element("th", column.num ? "num" : null);
      const button = element("button", "sort", column.label);
      button.type = "button";
      button.dataset.key = column.key;
      th.append(button);
      th.dataset.key = column.key;
      headRow.append(th);
    }
    const thead = element("thead");
    thead.append(headRow);
    this.body = element("tbody");
    this.body.id = "container-rows";
    table.append(thead, this.body);
    wrap.append(table);
    this.reason = element("p", "containers-reason");
    this.reason.hidden = true;
    root.append(head, this.reason, wrap);
    thead.addEventListener("click", (event) => {
      const button = event.target.closest("button[data-key]");
      if (!button) return;
      const key = button.dataset.key;
      const column = COLUMNS.find((c) => c.key === key);
      this.sort = key === this.sort.key
        ? { key, descending: !this.sort.descending }
        : { key, descending: !column.text };
      this.render();
    });
    this.headers = headRow;
    return root;
  }

  /** A stream message: rows added, updated and removed; the panel hidden when the group
   * has nothing to say. */
  update(message) {
    if (!("containers" in message)) return;
    const containers = message.containers;
    const reason = message.errors?.containers ?? null;
    const entries = containers && typeof containers === "object" ? containers : null;
    const unavailable = entries === null || (reason !== null && Object.keys(entries).length === 0);
    this.root.hidden = unavailable;
    this.root.dataset.reason = reason ?? "";
    if (unavailable) return;
    this.reason.hidden = reason === null;
    if (reason !== null) setText(this.reason, reason.replace(/^Metric collection failed: /, ""));
    for (const [id, entry] of Object.entries(entries)) {
      let row = this.rows.get(id);
      if (!row) row = this.addRow(id);
      row.entry = entry;
      row.cpu.push(entry.cpu_percent, entry.cpu_limit_cores ? entry.cpu_limit_cores * 100 : null);
      row.memory.push(entry.memory_bytes, entry.memory_limit_bytes ?? null);
    }
    for (const [id, row] of this.rows) {
      if (!(id in entries)) {
        row.tr.remove();
        this.rows.delete(id);
      }
    }
    this.latest = entries;
    this.render();
  }

  addRow(id) {
    const tr = element("tr");
    tr.dataset.id = id;
    const cells = {};
    for (const column of COLUMNS) {
      const td = element("td", column.num ? "num" : column.key);
      cells[column.key] = td;
      tr.append(td);
    }
    const cpu = new Sparkline();
    const memory = new Sparkline();
    cells.name.append(element("span", "c-name"), element("span", "c-image"));
    cells.state.append(element("span", "c-state"), element("span", "c-health"));
    cells.cpu.append(cpu.svg, element("span", "c-value"));
    cells.memory.append(memory.svg, element("span", "c-value"));
    const row = { tr, cells, cpu, memory, entry: null };
    this.rows.set(id, row);
    return row;
  }

  render() {
    const count = this.rows.size;
    setText(this.summary, count === 1 ? "1 running" : `${count} running`);
    const column = COLUMNS.find((c) => c.key === this.sort.key);
    const sign = this.sort.descending ? -1 : 1;
    const ordered = [...this.rows.values()].sort((a, b) => {
      const x = column.value(a.entry);
      const y = column.value(b.entry);
      const order = column.text ? String(x).localeCompare(String(y)) : x - y;
      return sign * order || a.entry.name.localeCompare(b.entry.name);
    });
    for (const th of this.headers.children) {
      const sorted = th.dataset.key === this.sort.key;
      th.setAttribute("aria-sort", sorted ? (this.sort.descending ? "descending" : "ascending") : "none");
    }
    ordered.forEach((row, index) => {
      this.fill(row);
      if (this.body.children[index] !== row.tr) this.body.insertBefore(row.tr, this.body.children[index] ?? null);
    });
    if (!count) {
      if (!this.empty) {
        this.empty = element("tr", "empty");
        const td = element("td", null, "No running containers");
        td.colSpan = COLUMNS.length;
        this.empty.append(td);
      }
      this.body.replaceChildren(this.empty);
    } else if (this.empty?.isConnected) {
      this.empty.remove();
    }
  }

  fill(row) {
    const c = row.entry;
    const f = this.format;
    const { cells } = row;
    setText(cells.name.querySelector(".c-name"), c.name);
    setText(cells.name.querySelector(".c-image"), c.image ?? "");
    cells.name.title = `${c.name}${c.image ? ` · ${c.image}` : ""} · ${c.id}`;
    const state = cells.state.querySelector(".c-state");
    setText(state, c.state ?? "–");
    state.dataset.state = c.state ?? "";
    const health = cells.state.querySelector(".c-health");
    setText(health, c.health ?? "");
    health.dataset.health = c.health ?? "";
    const cpu = c.cpu_limit_percent != null
      ? `${f.percent(c.cpu_percent)} (${f.percent(c.cpu_limit_percent)} of limit)`
      : f.percent(c.cpu_percent);
    setText(cells.cpu.querySelector(".c-value"), cpu);
    const memory = c.memory_limit_bytes != null
      ? `${f.bytes(c.memory_bytes)} / ${f.bytes(c.memory_limit_bytes)}`
      : f.bytes(c.memory_bytes);
    setText(cells.memory.querySelector(".c-value"), memory);
    cells.memory.title = `${f.percent(c.memory_percent)} of ${c.memory_limit_bytes != null ? "its limit" : "the host's memory"}`;
    setText(cells.net, `${f.rate(c.net_rx_bytes_per_s)} / ${f.rate(c.net_tx_bytes_per_s)}`);
    setText(cells.block, `${f.rate(c.block_read_bytes_per_s)} / ${f.rate(c.block_write_bytes_per_s)}`);
    setText(cells.pids, f.pids(c.pids).replace(/ processes$/, ""));
    setText(cells.uptime, f.uptime(c.uptime_seconds));
  }
}
