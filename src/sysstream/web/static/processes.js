// The processes card: the top 8 from the stream (by CPU or by memory), each with its command
// line, and on demand every process from GET …/metrics/processes: sorted and filtered by the
// server, which bounds what it returns. CPU percent is per core (100% = one logical CPU, as
// top shows it); the toggle shows each process's share of the whole machine instead (top's
// Irix mode off), the figure that adds up to the CPU chart.

import { formatter } from "./format.js";

const TOP_ROWS = 8;
const LIST_LIMIT = 500; // the route's own maximum
const LIST_REFRESH_MS = 5000; // the server reuses a walk for 5 s: no point asking sooner
const CPU_MODE_KEY = "sysstream.cpuMode";
// Column sort keys of the full list (GET …/processes?sort=); the top 8 come by cpu or memory.
const TOP_KEYS = { cpu: "top_cpu", memory: "top_memory" };
const NUMERIC = new Set(["cpu", "memory", "pid"]);

const $ = (id) => document.getElementById(id);

function cell(className) {
  const td = document.createElement("td");
  td.className = className;
  return td;
}

/** The arguments after the program (argv[0] is usually the program's path). */
function argumentsOf(cmdline) {
  const space = cmdline.indexOf(" ");
  return space < 0 ? "" : cmdline.slice(space + 1);
}

export class ProcessPanel {
  /**
   * @param {object} options
   * @param {(url: URL) => Promise<Response>} options.fetchJson
   * @param {() => URL|null} options.listUrl  GET …/metrics/processes, or null when absent
   * @param {() => import("./schema.js").Schema} options.schema
   */
  constructor({ fetchJson, listUrl, schema }) {
    this.fetchJson = fetchJson;
    this.listUrl = listUrl;
    this.schema = schema;
    this.sort = "cpu";
    this.descending = true;
    this.perCore = localStorage.getItem(CPU_MODE_KEY) !== "machine";
    this.full = false; // showing every process (the list route) rather than the top 8
    this.list = null; // the last list body
    this.latest = null; // the stream's processes group
    this.timer = null;
    this.generation = 0;
    this.filterTimer = null;

    $("process-head").addEventListener("click", (event) => {
      const th = event.target.closest("th[data-sort]");
      if (th && !th.classList.contains("disabled")) this.#sortBy(th.dataset.sort);
    });
    $("cpu-mode").addEventListener("click", (event) => {
      const button = event.target.closest("button[data-mode]");
      if (!button) return;
      this.perCore = button.dataset.mode === "core";
      localStorage.setItem(CPU_MODE_KEY, this.perCore ? "core" : "machine");
      this.draw();
    });
    $("process-all").addEventListener("click", () => this.#setFull(!this.full));
    $("process-filter").addEventListener("input", () => {
      clearTimeout(this.filterTimer);
      this.filterTimer = setTimeout(() => this.#refresh(), 250);
    });
  }

  /** Whether this server lists every process (not on a fleet host, nor an older server). */
  available() {
    return this.listUrl() !== null;
  }

  /** The stream's `processes` value (top lists, count, cpus). */
  update(processes) {
    this.latest = processes ?? null;
    this.draw();
  }

  /** Forget everything (another host was selected). */
  reset() {
    this.latest = null;
    this.list = null;
    this.#setFull(false);
    $("process-all").hidden = !this.available();
    this.draw();
  }

  #cpus() {
    return this.list?.cpus ?? this.latest?.cpus ?? null;
  }

  #rows() {
    if (this.full) return this.list?.rows ?? [];
    const key = TOP_KEYS[this.sort] ?? "top_cpu";
    return (this.latest?.[key] ?? []).slice(0, TOP_ROWS);
  }

  draw() {
    const schema = this.schema();
    if (!schema) return;
    // A fleet host's agent publishes no processes: no card rather than an empty one.
    const shown = schema.has("processes");
    if ($("processes").hidden === shown) $("processes").hidden = !shown;
    if (!shown) return;
    const cpus = this.#cpus();
    const machine = !this.perCore && cpus > 0;
    const cpu = formatter(schema.unit("processes.top_cpu.*.cpu_percent"));
    const rss = formatter(schema.unit("processes.top_memory.*.rss_bytes"));
    const memory = formatter(schema.unit("processes.top_memory.*.memory_percent"));
    const rows = this.#rows();
    const body = $("process-rows");
    const slots = this.full ? rows.length : TOP_ROWS;
    while (body.childElementCount < slots) {
      const tr = document.createElement("tr");
      const command = cell("cmd");
      command.append(document.createElement("b"), document.createTextNode(""));
      tr.append(cell("num c-pid"), command, cell("c-user"), cell("num"), cell("num c-mem"), cell("num"));
      body.append(tr);
    }
    while (body.childElementCount > slots) body.lastChild.remove();
    for (let i = 0; i < slots; i += 1) {
      const p = rows[i];
      const [pid, command, user, cpuCell, memCell, rssCell] = body.children[i].children;
      const set = (node, text) => {
        if (node.textContent !== text) node.textContent = text;
      };
      const cmdline = p?.cmdline ?? "";
      const name = p ? (cmdline ? p.name ?? "" : `[${p.name ?? ""}]`) : "";
      set(pid, p ? String(p.pid) : "");
      set(command.firstChild, name);
      const args = cmdline ? argumentsOf(cmdline) : "";
      if (command.lastChild.data !== (args ? ` ${args}` : "")) command.lastChild.data = args ? ` ${args}` : "";
      command.title = p ? cmdline || name : "";
      set(user, p?.user ?? "");
      set(cpuCell, p ? cpu(machine ? p.cpu_percent / cpus : p.cpu_percent) : "");
      set(memCell, p ? memory(p.memory_percent) : "");
      set(rssCell, p ? rss(p.rss_bytes) : "");
    }
    this.#drawHead(cpus);
    this.#drawSummary(schema);
  }

  #drawHead(cpus) {
    for (const th of $("process-head").querySelectorAll("th[data-sort]")) {
      const key = th.dataset.sort;
      const sortable = this.full || key in TOP_KEYS;
      th.classList.toggle("disabled", !sortable);
      th.firstElementChild.disabled = !sortable; // the top 8 come sorted by CPU or memory only
      th.setAttribute(
        "aria-sort",
        key === this.sort ? (this.descending ? "descending" : "ascending") : "none",
      );
    }
    const cpuHead = $("cpu-head");
    const scope = this.perCore ? "% of one core" : `% of ${cpus ?? "all"} CPUs`;
    cpuHead.title = this.perCore
      ? "CPU per core: 100% is one logical CPU (as top), so a process can exceed 100%"
      : "CPU as a share of the whole machine: the figures add up to the CPU chart";
    $("cpu-head-unit").textContent = this.perCore ? "/core" : "/all";
    for (const button of $("cpu-mode").querySelectorAll("button")) {
      const checked = (button.dataset.mode === "core") === this.perCore;
      button.setAttribute("aria-checked", String(checked));
    }
    $("cpu-mode").querySelector('[data-mode="machine"]').textContent = `% of ${cpus ?? "all"} CPUs`;
    $("cpu-mode").title = scope;
  }

  #drawSummary(schema) {
    const count = formatter(schema.unit("processes.count"));
    const processes = this.latest;
    let text = processes ? `${count(processes.count)} · ${processes.running ?? 0} running` : "";
    if (this.full && this.list) {
      const { matched, rows } = this.list;
      text = `${count(this.list.count)} · ${matched === rows.length ? matched : `${rows.length} of ${matched}`} shown`;
    }
    const summary = $("processes-summary");
    if (summary.textContent !== text) summary.textContent = text;
  }

  #sortBy(key) {
    if (key === this.sort) this.descending = !this.descending;
    else {
      this.sort = key;
      this.descending = NUMERIC.has(key) && key !== "pid";
    }
    if (!this.full) this.descending = true; // the stream's top lists are largest first
    if (this.full) this.#refresh();
    this.draw();
  }

  #setFull(full) {
    this.full = full && this.available();
    $("processes").classList.toggle("full", this.full);
    $("process-tools").hidden = !this.full;
    const button = $("process-all");
    button.setAttribute("aria-expanded", String(this.full));
    button.textContent = this.full ? `Top ${TOP_ROWS}` : "All processes";
    clearInterval(this.timer);
    this.generation += 1;
    if (this.full) {
      this.#refresh();
      this.timer = setInterval(() => {
        if (!document.hidden) this.#refresh();
      }, LIST_REFRESH_MS);
    } else {
      this.list = null;
      if (!(this.sort in TOP_KEYS)) this.sort = "cpu";
      this.descending = true;
    }
    this.draw();
  }

  async #refresh() {
    const url = this.listUrl();
    if (!url || !this.full) return;
    url.searchParams.set("sort", this.sort);
    url.searchParams.set("order", this.descending ? "desc" : "asc");
    url.searchParams.set("limit", String(LIST_LIMIT));
    const filter = $("process-filter").value.trim();
    if (filter) url.searchParams.set("filter", filter.slice(0, 100));
    const generation = ++this.generation; // only the newest answer is drawn
    let body = null;
    let problem = null;
    try {
      const response = await this.fetchJson(url);
      body = await response.json();
      if (!response.ok) problem = body?.error ?? `HTTP ${response.status}`;
    } catch (error) {
      problem = error.message;
    }
    if (generation !== this.generation) return; // closed, or another host, meanwhile
    $("process-error").hidden = !problem;
    $("process-error").textContent = problem ? `Process list unavailable: ${problem}` : "";
    if (!problem) this.list = body;
    this.draw();
  }
}
