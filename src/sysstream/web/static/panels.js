// What the dashboard shows: one panel per chart, each naming the field groups it needs, how
// to turn a message into series values, and what to print beside the chart. Titles, units
// and descriptions are looked up in the registry (schema.js); nothing here names a unit.

const num = (value) => (typeof value === "number" && Number.isFinite(value) ? value : null);

function each(object, fn) {
  if (object && typeof object === "object") for (const [key, value] of Object.entries(object)) fn(key, value);
}

/** "10 / 12 packets/s": two values of one unit, the unit printed once. */
function pair(format, a, b) {
  const first = format(a);
  const second = format(b);
  const unit = / (\S+)$/.exec(second)?.[1];
  return unit && first.endsWith(` ${unit}`) ? `${first.slice(0, -unit.length - 1)} / ${second}` : `${first} / ${second}`;
}

/** A series drawn in a panel: timeline key, legend label, registry path for its unit. */
function series(key, label, path, extra = {}) {
  return { key, label, path, ...extra };
}

// `band`: the series drawn with its min–max band where points are aggregated (the windows
// read from the history store); one per panel, so the band stays readable.
export const PANELS = [
  {
    id: "cpu",
    band: "cpu",
    groups: ["cpu", "cpu_times"],
    title: (schema) => schema.title("cpu"),
    description: (schema) => schema.description("cpu"),
    unitPath: "cpu",
    percent: true,
    extract(row, out) {
      out.set("cpu", num(row.cpu));
      each(row.cpu_times, (mode, value) => out.set(`mode:${mode}`, num(value)));
    },
    series(timeline) {
      const modes = ["user", "system", "iowait"].filter((m) => timeline.column(`mode:${m}`));
      return [
        series("cpu", "busy", "cpu", { fill: true, width: 2 }),
        ...modes.map((m) => series(`mode:${m}`, m, "cpu_times.*")),
      ];
    },
  },
  {
    id: "cores",
    groups: ["cpu_per_core"],
    title: (schema) => schema.title("cpu_per_core"),
    description: (schema) => schema.description("cpu_per_core"),
    unitPath: "cpu_per_core.*",
    percent: true,
    readout: "cores",
    extract(row, out) {
      if (Array.isArray(row.cpu_per_core)) row.cpu_per_core.forEach((v, i) => out.set(`core:${i}`, num(v)));
    },
    series(timeline, schema) {
      const keys = timeline.keys("core:");
      const many = keys.length > 8;
      return keys.map((key) =>
        series(key, schema.itemLabel("cpu_per_core.*", key.slice(5)), "cpu_per_core.*", {
          width: many ? 1 : 1.5,
          muted: many,
        }),
      );
    },
  },
  {
    id: "memory",
    band: "memory",
    groups: ["memory", "swap"],
    title: (schema) => `${schema.title("memory")} & ${schema.title("swap").toLowerCase()}`,
    description: (schema) => `${schema.description("memory")} ${schema.description("swap")}`,
    unitPath: "memory",
    percent: true,
    extract(row, out) {
      out.set("memory", num(row.memory));
      out.set("swap", num(row.swap?.percent));
    },
    series: (timeline, schema) => [
      series("memory", schema.title("memory").toLowerCase(), "memory", { fill: true, width: 2 }),
      series("swap", schema.title("swap").toLowerCase(), "swap.percent"),
    ],
    extra(latest, schema, fmt) {
      const rows = [];
      const detail = latest.memory_detail; // in bytes, where the server has the group
      if (detail && schema.has("memory_detail")) {
        const bytes = fmt("memory_detail.used_bytes");
        // In use as the percent counts it (total − available), so the two agree.
        const inUse = detail.total_bytes - detail.available_bytes;
        rows.push(["in use", `${bytes(inUse)} of ${bytes(detail.total_bytes)}`]);
        if (detail.cached_bytes != null) rows.push(["cached", bytes(detail.cached_bytes)]);
        rows.push(["available", bytes(detail.available_bytes)]);
      }
      const swap = latest.swap;
      if (swap && swap.total_bytes) {
        const bytes = fmt("swap.used_bytes");
        rows.push(["swap used", `${bytes(swap.used_bytes)} of ${bytes(swap.total_bytes)}`]);
      }
      return rows;
    },
  },
  {
    id: "load",
    band: "load1",
    groups: ["load"],
    title: (schema) => schema.title("load"),
    description: (schema) => schema.description("load"),
    unitPath: "load.load1",
    extract(row, out) {
      for (const key of ["load1", "load5", "load15"]) out.set(key, num(row.load?.[key]));
    },
    series: () => [
      series("load1", "1 min", "load.load1", { fill: true, width: 2 }),
      series("load5", "5 min", "load.load5"),
      series("load15", "15 min", "load.load15"),
    ],
    extra(latest, schema, fmt) {
      const perCore = latest.load?.load1_per_core;
      return perCore == null ? [] : [["1 min per core", fmt("load.load1_per_core")(perCore)]];
    },
  },
  {
    id: "net",
    band: "rx",
    groups: ["net"],
    title: (schema) => schema.title("net"),
    description: (schema) => schema.description("net"),
    unitPath: "net.rx_bytes_per_s",
    extract(row, out) {
      out.set("rx", num(row.net?.rx_bytes_per_s));
      out.set("tx", num(row.net?.tx_bytes_per_s));
    },
    series: () => [
      series("rx", "received", "net.rx_bytes_per_s", { fill: true, width: 2 }),
      series("tx", "sent", "net.tx_bytes_per_s", { width: 2 }),
    ],
    extra(latest, schema, fmt) {
      const net = latest.net;
      if (!net) return [];
      const rows = [["packets in / out", pair(fmt("net.rx_packets_per_s"), net.rx_packets_per_s, net.tx_packets_per_s)]];
      const errors = (net.rx_errors_per_s ?? 0) + (net.tx_errors_per_s ?? 0);
      if (errors > 0) rows.push(["errors", fmt("net.rx_errors_per_s")(errors)]);
      return rows;
    },
  },
  {
    id: "disk_io",
    band: "read",
    groups: ["disk_io"],
    title: (schema) => schema.title("disk_io"),
    description: (schema) => schema.description("disk_io"),
    unitPath: "disk_io.read_bytes_per_s",
    extract(row, out) {
      out.set("read", num(row.disk_io?.read_bytes_per_s));
      out.set("write", num(row.disk_io?.write_bytes_per_s));
    },
    series: () => [
      series("read", "read", "disk_io.read_bytes_per_s", { fill: true, width: 2 }),
      series("write", "write", "disk_io.write_bytes_per_s", { width: 2 }),
    ],
    extra(latest, schema, fmt) {
      const io = latest.disk_io;
      if (!io) return [];
      return [["read / write", pair(fmt("disk_io.read_ops_per_s"), io.read_ops_per_s, io.write_ops_per_s)]];
    },
  },
  {
    id: "mounts",
    groups: ["mounts"],
    title: (schema) => schema.title("mounts"),
    description: (schema) => schema.description("mounts"),
    unitPath: "mounts.*.percent",
    percent: true,
    readout: "mounts",
    extract(row, out) {
      each(row.mounts, (mountpoint, fs) => out.set(`mount:${mountpoint}`, num(fs?.percent)));
    },
    series: (timeline, schema) =>
      timeline.keys("mount:").map((key) => series(key, key.slice(6), "mounts.*.percent")),
  },
  {
    id: "temps",
    groups: ["temps"],
    optional: true, // shown only where the machine has sensors
    title: (schema) => schema.title("temps"),
    description: (schema) => schema.description("temps"),
    unitPath: "temps.*.*.celsius",
    extract(row, out) {
      each(row.temps, (chip, sensors) => {
        if (!Array.isArray(sensors)) return;
        sensors.forEach((sensor, i) => out.set(`temp:${chip}/${sensor.label || i}`, num(sensor.celsius)));
      });
    },
    series: (timeline) =>
      timeline.keys("temp:").slice(0, 8).map((key) => series(key, key.slice(5), "temps.*.*.celsius")),
  },
];

/** Every field group the page subscribes to, in a stable order. */
export function subscribedGroups(schema) {
  const groups = new Set();
  for (const panel of PANELS) for (const group of panel.groups) groups.add(group);
  groups.add("memory_detail"); // the memory card's bytes
  groups.add("processes");
  groups.add("uptime");
  return [...groups].filter((group) => schema.has(group));
}

/** The values a message row contributes to the timeline, for every panel at once. */
export function extractAll(row) {
  const out = new Map();
  for (const panel of PANELS) panel.extract(row, out);
  return out;
}

/** The series keys that carry a min–max band (`lo:key`, `hi:key`) when aggregated. */
export const BAND_KEYS = new Set(PANELS.filter((panel) => panel.band).map((panel) => panel.band));

/** The band columns of one aggregated point: `lo:key` from `low`, `hi:key` from `high`
 * (rows in the shape of a message, as the history endpoint's `min` and `max` are). */
export function extractBands(low, high, out) {
  const lows = extractAll(low);
  const highs = extractAll(high);
  for (const key of BAND_KEYS) {
    out.set(`lo:${key}`, lows.get(key) ?? null);
    out.set(`hi:${key}`, highs.get(key) ?? null);
  }
  return out;
}
