// Number formatting per unit kind. The unit of each metric comes from the registry
// (GET …/metrics/schema); this module only knows how to print each kind of unit.

const BYTE_UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

// `trim`: no trailing zeros (a threshold as written, "80%", not a reading's "80.0%").
function fixed(value, digits, trim = false) {
  return value.toLocaleString(undefined, {
    minimumFractionDigits: trim ? 0 : digits,
    maximumFractionDigits: digits,
  });
}

// Three significant figures keeps the width steady as values move: 9.87, 98.7, 987.
function sig3(value, trim = false) {
  const abs = Math.abs(value);
  if (abs >= 100 || abs === 0) return fixed(value, 0, trim);
  if (abs >= 10) return fixed(value, 1, trim);
  return fixed(value, 2, trim);
}

export function bytes(value, trim = false) {
  let unit = 0;
  let scaled = value;
  while (Math.abs(scaled) >= 1024 && unit < BYTE_UNITS.length - 1) {
    scaled /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${fixed(scaled, 0)} B` : `${sig3(scaled, trim)} ${BYTE_UNITS[unit]}`;
}

export function duration(seconds) {
  const s = Math.floor(seconds);
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d > 0) return `${d} d ${h} h`;
  if (h > 0) return `${h} h ${m} min`;
  if (m > 0) return `${m} min`;
  return `${s} s`;
}

function count(value, trim = false) {
  if (Math.abs(value) >= 1e6) return `${sig3(value / 1e6, trim)} M`;
  if (Math.abs(value) >= 1e4) return `${sig3(value / 1e3, trim)} k`;
  return Number.isInteger(value) ? fixed(value, 0) : sig3(value, trim);
}

// unit (from the registry) → print a value of it (`trim`: without trailing zeros)
const KINDS = {
  percent: (v, trim) => `${fixed(v, Math.abs(v) >= 99.95 ? 0 : 1, trim)}%`,
  bytes: bytes,
  "bytes/s": (v, trim) => `${bytes(v, trim)}/s`,
  "operations/s": (v, trim) => `${count(v, trim)} ops/s`,
  seconds: duration,
  celsius: (v) => `${fixed(v, 0)} °C`,
  rpm: (v) => `${fixed(v, 0)} rpm`,
};

/** A function printing a value of `unit`; null and non-finite values print as an en dash.
 * `trim`: no trailing zeros, for a number someone wrote (an alert's threshold: "80%",
 * "1 MiB/s") beside a reading ("80.4%", "1.20 MiB/s"). */
export function formatter(unit, { trim = false } = {}) {
  const kind = KINDS[unit] ?? ((v, t) => `${count(v, t)} ${unit}`);
  return (value) => (value == null || !Number.isFinite(value) ? "–" : kind(value, trim));
}

/** The power of 1024 a byte axis from `min` to `max` is labelled in, one for every tick:
 * the largest unit the range reaches a whole one of (KiB from 1 KiB up to 1,023.9 KiB). */
function byteAxisPower(min, max) {
  const top = Math.max(Math.abs(min ?? 0), Math.abs(max ?? 0));
  let power = 0;
  while (power < BYTE_UNITS.length - 1 && top >= 1024 ** (power + 1)) power += 1;
  return power;
}

// Steps in the axis' unit: powers of two (256, 512, 768 KiB), halves and quarters of a unit
// above bytes (0.5, 1, 1.5 MiB). With fewer than 1,024 units in the range, no tick reads
// "1,000 KiB" where a MiB would do.
const BYTE_STEPS = [0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];

/** Tick increments of a byte axis (uPlot's `incrs`, called with the scale's range): the
 * steps of its one unit, in bytes. */
export function byteIncrements(u, axisIdx, min, max) {
  const power = byteAxisPower(min, max);
  const steps = power === 0 ? BYTE_STEPS.filter((step) => step >= 1) : BYTE_STEPS;
  return steps.map((step) => step * 1024 ** power);
}

/** Axis tick labels: compact, and the unit the values beside the chart carry (a rate axis
 * says "/s"). `min` and `max` are the axis' range: a byte axis prints every tick in the one
 * unit that range calls for (0, 0.5, 1, 1.5 MiB/s), never a unit per tick. */
export function axisFormatter(unit) {
  if (unit === "percent") return (splits) => splits.map((v) => `${fixed(v, 0)}%`);
  if (unit === "bytes" || unit === "bytes/s") {
    const per = unit === "bytes/s" ? "/s" : "";
    return (splits, min, max) => {
      const power = byteAxisPower(min, max);
      const scale = 1024 ** power;
      const step = splits.length > 1 ? Math.abs(splits[1] - splits[0]) / scale : 1;
      const digits = [0, 1, 2, 3].find((d) => Number.isInteger(step * 10 ** d)) ?? 3;
      const print = (v) => (v / scale).toLocaleString(undefined, { maximumFractionDigits: digits });
      return splits.map((v) => `${print(v)} ${BYTE_UNITS[power]}${per}`);
    };
  }
  return (splits) => {
    const step = splits.length > 1 ? Math.abs(splits[1] - splits[0]) : 1;
    const digits = step > 0 && step < 1 ? Math.min(3, Math.ceil(-Math.log10(step) - 1e-9)) : 0;
    return splits.map((v) => (Math.abs(v) >= 1e4 ? count(v) : fixed(v, digits)));
  };
}

/** The browser's clock convention: true where its locale reads 12-hour time ("2:30 PM"). */
export const twelveHour =
  new Intl.DateTimeFormat(undefined, { hour: "numeric" }).resolvedOptions().hourCycle?.startsWith("h1") ??
  false;

const clockFormat = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit", second: "2-digit" });

/** A time of day with seconds, in the browser locale's convention (the footer, notices). */
export function clockTime(date) {
  return clockFormat.format(date);
}

/** Time axis labels in the locale's convention (hh:mm, or h:mm AM/PM): hh:mm:ss for the
 * 1 min window; windows longer than a day name the day at midnight ("Tue 11") so a week
 * reads without dates on every tick. */
const timeFormats = new Map();

function timeScale(windowSeconds) {
  return windowSeconds <= 60 ? "seconds" : windowSeconds <= 86400 ? "minutes" : "days";
}

export function timeFormatter(windowSeconds) {
  const scale = timeScale(windowSeconds);
  if (!timeFormats.has(scale)) timeFormats.set(scale, makeTimeFormatter(scale));
  return timeFormats.get(scale);
}

/** Pixels between time ticks: room for the widest label of the window's scale. */
export function timeSpace(windowSeconds) {
  const scale = timeScale(windowSeconds);
  const base = scale === "seconds" ? 64 : scale === "days" ? 56 : 44;
  return twelveHour ? base + 22 : base;
}

function makeTimeFormatter(scale) {
  // "numeric": 4:39 PM where the locale reads 12-hour time; its own 16:39 or 4:39 elsewhere.
  const clock = { hour: "numeric", minute: "2-digit" };
  const format = new Intl.DateTimeFormat(
    undefined,
    scale === "seconds" ? { ...clock, second: "2-digit" } : clock,
  );
  const day = new Intl.DateTimeFormat(undefined, { weekday: "short", day: "numeric" });
  return (splits) =>
    splits.map((t) => {
      const date = new Date(t * 1000);
      const midnight = date.getHours() === 0 && date.getMinutes() === 0;
      return scale === "days" && midnight ? day.format(date) : format.format(date);
    });
}

/** The time of a hovered point: the clock, plus the weekday once the window spans days. */
export function hoverTime(windowSeconds, time) {
  const date = new Date(time * 1000);
  if (windowSeconds <= 3600) return clockTime(date);
  return date.toLocaleString(undefined, { weekday: "short", hour: "numeric", minute: "2-digit" });
}
