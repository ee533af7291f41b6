// The metric registry as the page sees it: GET …/metrics/schema, looked up by wire path
// ("net.rx_bytes_per_s", "mounts.*.percent"). Titles, units and descriptions come from here.

export class Schema {
  constructor(body) {
    if (!body || typeof body.groups !== "object") {
      throw new Error(`expected a schema with "groups", got ${JSON.stringify(body).slice(0, 80)}`);
    }
    this.interval = Number(body.interval) || 1;
    this.historySeconds = Number(body.history_seconds) || 0; // what the in-memory ring holds
    this.store = body.store === true; // older ranges can be read from the history store
    this.processesRoute = body.processes === true; // GET …/metrics/processes lists every process
    this.hostname = typeof body.hostname === "string" && body.hostname ? body.hostname : null;
    this.groups = body.groups;
    this.metrics = new Map();
    for (const group of Object.values(body.groups)) {
      for (const metric of group.metrics ?? []) this.metrics.set(metric.path, metric);
    }
  }

  has(group) {
    return Object.hasOwn(this.groups, group);
  }

  title(group) {
    return this.groups[group]?.title ?? group;
  }

  description(group) {
    return this.groups[group]?.description ?? "";
  }

  metric(path) {
    const metric = this.metrics.get(path);
    if (!metric) throw new Error(`expected a registry metric, got ${JSON.stringify(path)}`);
    return metric;
  }

  unit(path) {
    return this.metric(path).unit;
  }

  /** "core 3", "interface eth0": a per-item series named by the registry's label. */
  itemLabel(path, key) {
    const [label] = this.metric(path).labels ?? [];
    return label && /^\d+$/.test(key) ? `${label} ${key}` : key;
  }
}
