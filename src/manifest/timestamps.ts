/**
 * Timestamps as the SDK's Python reads and writes them. A revocation's signature covers
 * `datetime.isoformat()` of the parsed `revoked_at` (`+00:00`, not `Z`; six fractional digits
 * only when microseconds are non-zero), so the parsed fields, offset included, are kept.
 */

export interface Timestamp {
  /** Local date and time as written, before applying the offset. */
  readonly year: number;
  readonly month: number;
  readonly day: number;
  readonly hour: number;
  readonly minute: number;
  readonly second: number;
  readonly microsecond: number;
  /** Offset from UTC in minutes (east positive). */
  readonly offsetMinutes: number;
  /** Milliseconds since the epoch (microseconds truncated). */
  readonly epochMs: number;
}

// The forms rotor reproduces exactly; Python accepts more, which rotor refuses rather than guess.
const TIMESTAMP = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?(Z|[+-]\d{2}:\d{2})$/;

/** Parses `YYYY-MM-DDTHH:MM:SS[.ffffff](Z|±HH:MM)`; returns a reason string when it cannot. */
export function parseTimestamp(text: string): Timestamp | string {
  const m = TIMESTAMP.exec(text);
  if (m === null)
    return `${JSON.stringify(text)} is not a timestamp of the form YYYY-MM-DDTHH:MM:SS[.ffffff](Z|±HH:MM)`;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const microsecond = m[7] === undefined ? 0 : Number(m[7].padEnd(6, '0'));
  let offsetMinutes = 0;
  if (m[8] !== 'Z') {
    const sign = m[8]!.startsWith('-') ? -1 : 1;
    const oh = Number(m[8]!.slice(1, 3));
    const om = Number(m[8]!.slice(4, 6));
    if (oh > 23 || om > 59) return `${JSON.stringify(text)} has an out-of-range UTC offset`;
    offsetMinutes = sign * (oh * 60 + om);
  }
  if (year < 1 || month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) {
    return `${JSON.stringify(text)} is not a calendar date`;
  }
  if (hour > 23 || minute > 59 || second > 59) return `${JSON.stringify(text)} is not a valid time of day`;
  const utc = Date.UTC(year, month - 1, day, hour, minute, second);
  // Date.UTC maps years 0..99 to 1900..1999.
  const fixed = year < 100 ? new Date(utc).setUTCFullYear(year) : utc;
  const epochMs = fixed - offsetMinutes * 60_000 + Math.floor(microsecond / 1000);
  return { year, month, day, hour, minute, second, microsecond, offsetMinutes, epochMs };
}

export function timestampFromDate(date: Date): Timestamp {
  const ms = date.getTime();
  if (!Number.isFinite(ms)) throw new RangeError('invalid Date');
  return {
    year: date.getUTCFullYear(),
    month: date.getUTCMonth() + 1,
    day: date.getUTCDate(),
    hour: date.getUTCHours(),
    minute: date.getUTCMinutes(),
    second: date.getUTCSeconds(),
    microsecond: date.getUTCMilliseconds() * 1000,
    offsetMinutes: 0,
    epochMs: ms,
  };
}

/** Python's `datetime.isoformat()` of an aware datetime. */
export function pythonIsoformat(ts: Timestamp): string {
  return `${localPart(ts)}${formatOffset(ts.offsetMinutes)}`;
}

/** How pydantic writes the datetime into a FileCRL line: as isoformat, but UTC as `Z`. */
export function pydanticDatetime(ts: Timestamp): string {
  return `${localPart(ts)}${ts.offsetMinutes === 0 ? 'Z' : formatOffset(ts.offsetMinutes)}`;
}

/** `YYYY-MM-DDTHH:MM:SSZ`: the SDK's `signed_at` and `issued_at` form. */
export function formatUtcSeconds(date: Date): string {
  const seconds = Math.floor(date.getTime() / 1000);
  // A batch signs thousands of manifests with one clock reading; toISOString is not free.
  if (seconds !== lastSeconds) {
    lastText = `${date.toISOString().slice(0, 19)}Z`;
    lastSeconds = seconds;
  }
  return lastText;
}

let lastSeconds = Number.NaN;
let lastText = '';

function localPart(ts: Timestamp): string {
  const date = `${pad(ts.year, 4)}-${pad(ts.month, 2)}-${pad(ts.day, 2)}`;
  const time = `${pad(ts.hour, 2)}:${pad(ts.minute, 2)}:${pad(ts.second, 2)}`;
  return `${date}T${time}${ts.microsecond === 0 ? '' : `.${pad(ts.microsecond, 6)}`}`;
}

function formatOffset(minutes: number): string {
  const sign = minutes < 0 ? '-' : '+';
  const abs = Math.abs(minutes);
  return `${sign}${pad(Math.floor(abs / 60), 2)}:${pad(abs % 60, 2)}`;
}

function pad(n: number, width: number): string {
  return String(n).padStart(width, '0');
}

function daysInMonth(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}
