// Wall-clock time in the store's time zone (an IANA name) without a library.

const formatters = new Map();

function formatter(tz) {
  if (!formatters.has(tz)) {
    formatters.set(tz, new Intl.DateTimeFormat("en-GB", {
      timeZone: tz, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", second: "2-digit", weekday: "short",
    }));
  }
  return formatters.get(tz);
}

/** {year, month (1-12), day, hour, minute, second, weekday} of Unix seconds in `tz`. */
export function wallParts(unix, tz) {
  const parts = {};
  for (const p of formatter(tz).formatToParts(new Date(unix * 1000))) parts[p.type] = p.value;
  return {
    year: +parts.year, month: +parts.month, day: +parts.day,
    hour: +parts.hour, minute: +parts.minute, second: +parts.second, weekday: parts.weekday,
  };
}

function offsetSeconds(unix, tz) {
  const w = wallParts(unix, tz);
  return (Date.UTC(w.year, w.month - 1, w.day, w.hour, w.minute, w.second) / 1000) - Math.floor(unix);
}

/** Unix seconds of a wall-clock time in `tz` (month 1-12; day may overflow, e.g. day + 7). */
export function wallToUnix(year, month, day, hour = 0, minute = 0, tz = "UTC") {
  const wall = Date.UTC(year, month - 1, day, hour, minute) / 1000;
  let unix = wall - offsetSeconds(wall, tz);
  unix = wall - offsetSeconds(unix, tz);
  return unix;
}

/** The same wall-clock time `days` later (negative: earlier), DST-safe. */
export function shiftDays(unix, days, tz) {
  const w = wallParts(unix, tz);
  return wallToUnix(w.year, w.month, w.day + days, w.hour, w.minute, tz);
}

/** "YYYY-MM-DD" of Unix seconds in `tz` (for <input type=date>). */
export function isoDate(unix, tz) {
  const w = wallParts(unix, tz);
  return `${w.year}-${String(w.month).padStart(2, "0")}-${String(w.day).padStart(2, "0")}`;
}

/** Local midnight starting the day "YYYY-MM-DD" (+ `days`) in `tz`. */
export function dateToUnix(text, tz, days = 0) {
  const [y, m, d] = text.split("-").map(Number);
  return wallToUnix(y, m, d + days, 0, 0, tz);
}

/** "14:00" or "Mon 03 14:00" for a bucket start. */
export function label(unix, tz, withDay) {
  const w = wallParts(unix, tz);
  const hm = `${String(w.hour).padStart(2, "0")}:${String(w.minute).padStart(2, "0")}`;
  return withDay ? `${w.weekday} ${String(w.day).padStart(2, "0")} ${hm}` : hm;
}
