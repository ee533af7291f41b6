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
    if (values !== null) this.#fill(index, values);
  }

  /** Overwrite the newest point's values (a bucket still filling up). */
  replaceLast(values) {
    const index = this.times.length - 1;
    if (index < 0) throw new Error("expected a point to replace, got an empty timeline");
    for (const column of this.columns.values()) column[index] = null;
    this.#fill(index, values);
  }

  /** Write `values` at `index`, creating (null-padded) columns for keys seen first here. */
  #fill(index, values) {
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

/**
 * Live ticks averaged into `step`-second buckets the way the history store aggregates
 * them (docs/history.md): aligned to the epoch, stamped with the bucket's start, each value
 * the mean of the ticks in it; keys in `bandKeys` also get `lo:key` / `hi:key`, the
 * bucket's minimum and maximum. The newest bucket is redrawn in place as ticks arrive.
 *
 * A bucket is filled only by the ticks this object saw from its start: a bucket already
 * on the timeline (read from the store while it was still open) is left as the store gave
 * it, and the next bucket is this object's. No averages of partial counts are guessed.
 */
export class Buckets {
  constructor(step, bandKeys) {
    if (!(step > 0)) throw new Error(`expected a bucket step > 0 seconds, got ${step}`);
    this.step = step;
    this.bandKeys = bandKeys;
    this.start = null; // the bucket being filled
    this.sums = new Map(); // key → [sum, count, min, max]
  }

  /** Add one tick to `timeline`; returns whether it changed the timeline. */
  add(timeline, time, values, { gap = Infinity } = {}) {
    const start = Math.floor(time / this.step) * this.step;
    const last = timeline.last;
    if (last !== null && start < last) return false; // older than what is drawn
    if (start === last && start !== this.start) return false; // the store's bucket
    if (start !== this.start) {
      this.start = start;
      this.sums.clear();
    }
    for (const [key, value] of values) {
      if (value == null) continue;
      const sum = this.sums.get(key);
      if (sum) {
        sum[0] += value;
        sum[1] += 1;
        if (value < sum[2]) sum[2] = value;
        if (value > sum[3]) sum[3] = value;
      } else {
        this.sums.set(key, [value, 1, value, value]);
      }
    }
    const row = new Map();
    for (const [key, [sum, count, low, high]] of this.sums) {
      row.set(key, sum / count);
      if (this.bandKeys.has(key)) {
        row.set(`lo:${key}`, low);
        row.set(`hi:${key}`, high);
      }
    }
    if (start === last) timeline.replaceLast(row);
    else timeline.push(start, row, { step: this.step, gap });
    return true;
  }
}
