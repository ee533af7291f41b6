// One dashboard card: title, the current values large beside the chart, and a uPlot chart
// drawn from the shared timeline. Built once; numbers update in place (fixed-width
// tabular figures, so nothing moves as values change).

import uPlot from "./vendor/uplot/uPlot.esm.js";
import { axisFormatter, byteIncrements, formatter, hoverTime, timeFormatter, timeSpace } from "./format.js";

const PLOT_HEIGHT = 168;

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text != null) node.textContent = text;
  return node;
}

/** Split "12.3 MiB/s" into ["12.3", "MiB/s"] and "45.2%" into ["45.2", "%"]. */
function splitUnit(text) {
  const match = /^([–\-+]?[\d.,\s]*\d|–)\s*(.*)$/.exec(text);
  return match ? [match[1], match[2]] : [text, ""];
}

export function theme() {
  const css = getComputedStyle(document.documentElement);
  const value = (name) => css.getPropertyValue(name).trim();
  return {
    text: value("--muted"),
    grid: value("--grid"),
    palette: [1, 2, 3, 4, 5, 6, 7, 8].map((i) => value(`--c${i}`)),
    font: `11px ${value("--font-ui") || "system-ui"}`,
  };
}

function alpha(color, a) {
  // Palette colours are #rrggbb; uPlot takes any canvas colour.
  if (/^#[0-9a-f]{6}$/i.test(color)) {
    const n = parseInt(color.slice(1), 16);
    return `rgba(${n >> 16}, ${(n >> 8) & 255}, ${n & 255}, ${a})`;
  }
  return color;
}

export class Card {
  constructor(panel, schema, view) {
    this.panel = panel;
    this.schema = schema;
    this.view = view; // { xRange(): [min, max], theme }
    this.fmt = (path) => formatter(schema.unit(path));
    this.format = this.fmt(panel.unitPath);
    this.plot = null;
    this.signature = "";
    this.series = [];
    this.band = null; // the series key drawn with a min–max band, when the points carry one
    this.hoverIndex = null;
    this.xTicks = []; // the tick labels as last drawn (the canvas is not text), for tests
    this.yTicks = [];
    this.readoutNodes = new Map();

    this.root = el("section", "card");
    this.root.id = `card-${panel.id}`;
    this.root.dataset.panel = panel.id;
    const head = el("header", "card-head");
    const title = el("h2", null, panel.title(schema));
    title.title = panel.description(schema);
    this.sub = el("span", "sub");
    head.append(title, this.sub);
    this.readout = el("div", "readout");
    this.legend = el("div", "legend");
    this.extra = el("dl", "extra");
    this.special = el("div", "special");
    this.readout.append(this.legend, this.special, this.extra);
    this.plotBox = el("div", "plot");
    this.plotBox.style.height = `${PLOT_HEIGHT}px`;
    const body = el("div", "card-body");
    body.append(this.readout, this.plotBox);
    this.root.append(head, body);

    this.resize = new ResizeObserver(() => this.#fit());
    this.resize.observe(this.plotBox);
  }

  destroy() {
    this.resize.disconnect();
    this.plot?.destroy();
    this.plot = null;
    this.root.remove();
  }

  /** Redraw from the timeline; rebuild the chart when the set of series changed. */
  draw(timeline) {
    const series = this.panel.series(timeline, this.schema);
    const band = this.panel.band && timeline.column(`hi:${this.panel.band}`) ? this.panel.band : null;
    const signature = [...series.map((s) => s.key), `band:${band}`].join("\n");
    if (signature !== this.signature || !this.plot) {
      this.signature = signature;
      this.series = series;
      this.band = series.some((s) => s.key === band) ? band : null;
      this.#build(timeline);
      this.#buildLegend();
    }
    const data = [timeline.times, ...series.map((s) => timeline.column(s.key) ?? [])];
    if (this.band) data.push(timeline.column(`hi:${this.band}`), timeline.column(`lo:${this.band}`));
    this.plot.setData(data, false);
    this.plot.setScale("x", this.view.xRange());
  }

  /** Rebuild with the current theme's colours. */
  restyle(timeline) {
    this.signature = "";
    this.draw(timeline);
  }

  #build(timeline) {
    this.plot?.destroy();
    const t = this.view.theme;
    const many = this.series.length > 8;
    this.series.forEach((s, i) => {
      s.color = s.muted ? alpha(t.palette[0], 0.55) : t.palette[i % t.palette.length];
    });
    const unit = this.schema.unit(this.panel.unitPath);
    const axisFmt = axisFormatter(unit);
    const byteAxis = unit === "bytes" || unit === "bytes/s";
    const axis = { stroke: t.text, font: t.font, grid: { stroke: t.grid, width: 1 }, ticks: { show: false } };
    const percent = this.panel.percent;
    const options = {
      width: Math.max(120, this.plotBox.clientWidth),
      height: PLOT_HEIGHT,
      legend: { show: false },
      padding: [8, 18, 0, 0], // room on the right for the last time label
      cursor: {
        drag: { x: false, y: false, setScale: false },
        points: { size: 7, width: 2 },
      },
      scales: {
        x: { time: true, range: () => this.view.xRange() },
        y: {
          range: percent
            ? () => [0, 100]
            : // A flat zero (an idle disk, no traffic) still gets a scale to read it against.
              (u, min, max) => [0, max > 0 ? max * 1.1 : byteAxis ? 4096 : 1],
        },
      },
      axes: [
        {
          ...axis,
          // hh:mm:ss is wider; so is "Tue 11" with its neighbours on a week.
          space: () => timeSpace(this.view.window()),
          size: 26,
          values: (u, splits) => (this.xTicks = timeFormatter(this.view.window())(splits)),
        },
        {
          ...axis,
          size: unit === "bytes/s" ? 70 : 58, // "0.25 MiB/s"
          space: 30,
          // A byte axis: one unit for the whole axis, from its range, and steps of it.
          values: (u, splits) => (this.yTicks = axisFmt(splits, u.scales.y.min, u.scales.y.max)),
          ...(byteAxis ? { incrs: byteIncrements } : {}),
        },
      ],
      series: [
        {},
        ...this.series.map((s) => ({
          label: s.label,
          stroke: s.color,
          width: s.width ?? 1.5,
          // A banded series is not also filled: the band says where its values were.
          fill: s.fill && !many && s.key !== this.band ? alpha(s.color, 0.14) : undefined,
          points: { show: false },
          spanGaps: false,
        })),
        ...this.#bandSeries(),
      ],
      bands: this.band
        ? [{ series: [this.series.length + 1, this.series.length + 2], fill: this.#bandColor(0.2) }]
        : [],
      hooks: {
        setCursor: [(u) => this.#hover(u.cursor.idx)],
      },
    };
    this.plot = new uPlot(options, [timeline.times, ...this.series.map(() => [])], this.plotBox);
  }

  /** The band's edges (max, then min): invisible lines the band is filled between; their
   * hover dots are transparent too, so only the average is marked. */
  #bandSeries() {
    if (!this.band) return [];
    const edge = (label) => ({
      label,
      stroke: this.#bandColor(0),
      width: 1,
      points: { show: false },
      spanGaps: false,
    });
    return [edge("max"), edge("min")];
  }

  #bandColor(a) {
    const banded = this.series.find((s) => s.key === this.band);
    return alpha(banded.color, a);
  }

  #fit() {
    if (!this.plot) return;
    const width = Math.max(120, Math.floor(this.plotBox.clientWidth));
    if (width !== this.plot.width) this.plot.setSize({ width, height: PLOT_HEIGHT });
  }

  #buildLegend() {
    this.legend.replaceChildren();
    this.legendValues = [];
    const shown = this.panel.readout ? [] : this.series;
    shown.forEach((s, i) => {
      const row = el("div", i === 0 ? "stat primary" : "stat");
      const label = el("span", "label");
      const swatch = el("i", "swatch");
      swatch.style.background = s.color;
      label.append(swatch, document.createTextNode(s.label));
      const value = el("span", "value");
      const number = el("span", "num", "–");
      const unit = el("span", "unit");
      value.append(number, unit);
      row.append(label, value);
      this.legend.append(row);
      this.legendValues.push([number, unit, this.fmt(s.path)]);
    });
  }

  #hover(index) {
    this.hoverIndex = index ?? null;
    if (this.lastUpdate) this.update(...this.lastUpdate);
  }

  /** Print the current values (or the hovered ones) beside the chart. */
  update(latest, timeline, live = new Map()) {
    this.lastUpdate = [latest, timeline, live];
    const index = this.hoverIndex;
    const hovering = index != null && index < timeline.length;
    this.series.forEach((s, i) => {
      const slot = this.legendValues?.[i];
      if (!slot) return;
      const column = timeline.column(s.key);
      // Not hovering: the latest tick's value (`live`), not the newest point, which on
      // the long windows is the average of a bucket still filling up.
      const value = hovering
        ? (column?.[index] ?? null)
        : (live.get(s.key) ?? (column ? column[column.length - 1] : null));
      const [number, unit] = splitUnit(slot[2](value));
      if (slot[0].textContent !== number) slot[0].textContent = number;
      if (slot[1].textContent !== unit) slot[1].textContent = unit;
    });
    this.sub.textContent = hovering ? hoverTime(this.view.window(), timeline.times[index]) : "";
    this.root.classList.toggle("hovering", hovering);
    if (this.panel.readout === "cores") this.#cores(latest);
    if (this.panel.readout === "mounts") this.#mounts(latest);
    if (this.panel.extra) this.#extra(this.panel.extra(latest, this.schema, this.fmt));
  }

  #extra(rows) {
    const key = rows.map(([label]) => label).join("\n");
    if (this.extra.dataset.key !== key) {
      this.extra.dataset.key = key;
      this.extra.replaceChildren(...rows.flatMap(([label]) => [el("dt", null, label), el("dd")]));
    }
    rows.forEach(([, text], i) => {
      const dd = this.extra.children[i * 2 + 1];
      if (dd.textContent !== text) dd.textContent = text;
    });
  }

  /** One bar per core, now; the label beneath each bar names its core in the colour of its
   * line on the chart (the chart's legend), readable however full the bar is. */
  #cores(latest) {
    const cores = Array.isArray(latest.cpu_per_core) ? latest.cpu_per_core : [];
    const colors = new Map(this.series.map((s) => [s.key, s.muted ? null : s.color]));
    const key = `${cores.length}\n${[...colors.values()].join(",")}`;
    if (this.special.dataset.key !== key) {
      this.special.dataset.key = key;
      this.special.className = `special cores ${cores.length > 16 ? "dense" : ""}`;
      this.special.replaceChildren(
        ...cores.map((_, i) => {
          const cell = el("div", "core");
          const bar = el("div", "core-bar");
          bar.append(el("div", "fill"));
          const label = el("span", "core-label", String(i));
          const color = colors.get(`core:${i}`);
          if (color) label.style.setProperty("--swatch", color);
          cell.append(bar, label);
          return cell;
        }),
      );
    }
    cores.forEach((value, i) => {
      const cell = this.special.children[i];
      const pct = Math.max(0, Math.min(100, value ?? 0));
      cell.firstChild.firstChild.style.transform = `scaleY(${pct / 100})`;
      cell.dataset.level = pct >= 90 ? "hot" : pct >= 60 ? "warm" : "";
      cell.title = `${this.schema.itemLabel("cpu_per_core.*", String(i))}: ${this.format(value)}`;
    });
    const busiest = cores.length ? Math.max(...cores.map((v) => v ?? 0)) : null;
    const rows = cores.length ? [["busiest core", this.format(busiest)]] : [];
    // Past 8 cores the lines share one muted colour: say so rather than pretend a legend.
    if (cores.length > 8) rows.push(["chart", "one line per core"]);
    this.#extra(rows);
  }

  #mounts(latest) {
    const mounts = Object.entries(latest.mounts ?? {});
    const key = mounts.map(([m]) => m).join("\n");
    if (this.special.dataset.key !== key) {
      this.special.dataset.key = key;
      this.special.className = "special mounts";
      const colors = new Map(this.series.map((s) => [s.key, s.color]));
      this.special.replaceChildren(
        ...mounts.map(([mountpoint, fs]) => {
          const row = el("div", "mount");
          row.title = `${fs?.device ?? ""} ${fs?.fstype ?? ""}`.trim();
          const name = el("span", "mount-name");
          const swatch = el("i", "swatch");
          swatch.style.background = colors.get(`mount:${mountpoint}`) ?? "currentColor";
          name.append(swatch, document.createTextNode(mountpoint));
          const bar = el("div", "meter");
          bar.append(el("div", "meter-fill"));
          row.append(name, el("span", "mount-pct num"), bar, el("span", "mount-bytes"));
          return row;
        }),
      );
    }
    const bytes = this.fmt("mounts.*.used_bytes");
    mounts.forEach(([mountpoint, fs], i) => {
      const row = this.special.children[i];
      const pct = num(fs?.percent);
      row.children[1].textContent = this.format(pct);
      row.children[2].firstChild.style.transform = `scaleX(${(pct ?? 0) / 100})`;
      row.children[2].dataset.level = pct >= 90 ? "hot" : pct >= 75 ? "warm" : "";
      // The percent is of the space users can fill (used + available, as df): the bytes
      // say the same, and the size with the root reserve is on hover.
      const used = num(fs?.used_bytes);
      const usable = used !== null && num(fs?.free_bytes) !== null ? used + fs.free_bytes : null;
      row.children[3].textContent = `${bytes(used)} of ${bytes(usable)} usable`;
      row.title =
        `${mountpoint}: ${bytes(used)} used, ${bytes(fs?.free_bytes)} available to users; ` +
        `size ${bytes(fs?.total_bytes)} (the rest is reserved for root). ` +
        `Percent of usable space, as df. ${fs?.device ?? ""} ${fs?.fstype ?? ""}`.trim();
    });
  }
}

function num(value) {
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}
