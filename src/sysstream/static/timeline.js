// A bounded columnar time series store: one timestamps array and one value array per series
// key, in the layout uPlot draws from. No I/O: fed points, trimmed to a window, asked for
// columns. Long-open tabs stay flat because every array is cut to the window.

export class Timeline {
  constructor() {
    this.times = [];
    this.columns = new Map(); // key → (number|null)[] aligned with times
  }

  get length() {
    return this.times.length;
  }

  get last() {
    return this.times.length ? this.times[this.times.length - 1] : null;
  }

  get first() {
    return this.times.length ? this.times[0] : null;
  }

  /**
   * Append a point at `time` (epoch seconds) with `values` (Map key → number|null).
   * Points closer than `step` after the last one are skipped (older or duplicate ticks,
   * or finer than the chosen resolution); a hole longer than `gap` gets a null row so the
   * lines break instead of bridging an outage. Returns whether the point was kept.
   */
  push(time, values, { step = 0, gap = Infinity } = {}) {
    if (!Number.isFinite(time)) throw new Error(`expected a finite timestamp, got ${time}`);
    const last = this.last;
    if (last !== null && time - last < Math.max(step, 1e-6) * 0.999) return false;
    if (last !== null && time - last > gap) this.#append(last + Math.min(gap, time - last) / 2, null);
    this.#append(time, values);
    return true;
  }

  #append(time, values) {
    const index = this.times.length;
    this.times.push(time);
    for (const column of this.columns.values()) column.push(null);
    if (values === null) return;
    for (const [key, value] of values) {
      let column = this.columns.get(key);
      if (!column) {
        column = new Array(index + 1).fill(null);
        this.columns.set(key, column);
      }
      column[index] = value ?? null;
    }
  }

  column(key) {
    return this.columns.get(key) ?? null;
  }

  /** The keys present under `prefix` ("mount:"), in first-seen order. */
  keys(prefix) {
    return [...this.columns.keys()].filter((key) => key.startsWith(prefix));
  }

  /** Drop points older than `since`; drop series left with no values at all. */
  trim(since) {
    let cut = 0;
    while (cut < this.times.length && this.times[cut] < since) cut += 1;
    if (cut === 0) return 0;
    this.times.splice(0, cut);
    for (const [key, column] of this.columns) {
      column.splice(0, cut);
      if (column.every((value) => value === null)) this.columns.delete(key);
    }
    return cut;
  }

  /** Every point as [time, Map], oldest first (for merging older history in). */
  *points() {
    const keys = [...this.columns.keys()];
    for (let i = 0; i < this.times.length; i += 1) {
      const values = new Map();
      for (const key of keys) {
        const value = this.columns.get(key)[i];
        if (value !== null) values.set(key, value);
      }
      yield [this.times[i], values];
    }
  }

  clear() {
    this.times = [];
    this.columns = new Map();
  }
}
