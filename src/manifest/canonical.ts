/**
 * The reference SDK's canonical JSON, byte for byte. It calls itself RFC 8785 but departs from it,
 * and verifiers run the SDK, so its departures are reproduced (each is pinned by a named test):
 * - object members whose value is null are dropped (array nulls stay);
 * - keys are sorted by Unicode code point of the key as parsed, before NFC normalization
 *   (RFC 8785 sorts UTF-16 code units), so NFC can make two keys equal and both are written;
 * - every string (keys too) is NFC-normalized;
 * - escaping: \b \f \n \r \t short forms, other C0 controls, DEL, C1 controls and U+2028/U+2029 as
 *   lowercase \u00XX; everything else raw UTF-8 (RFC 8785 leaves DEL, C1 and U+2028/9 raw);
 * - numbers: ints by their exact digits (big ints stay exact); floats that are integral and below
 *   1e15 in magnitude as ints, other floats as Python's repr() (`1e+16`, `1e-07`, `1000000000000000.0`);
 * - nesting deeper than 64 is refused (a value inside more than 64 arrays or objects).
 */
import { formatPath, ManifestError } from './errors';
import { JsonNumber, type JsonObject, type JsonValue } from './json';

export const MAX_CANONICAL_DEPTH = 64;

/** `source` only names the document in error messages. */
export function canonicalize(value: JsonValue, source?: string): string {
  return new Canonicalizer(source).value(value, 0);
}

export function canonicalBytes(value: JsonValue, source?: string): Uint8Array {
  return Buffer.from(canonicalize(value, source), 'utf8');
}

/** Serializes values nested at a given depth; keeps the path only for error messages. */
export class Canonicalizer {
  private readonly path: (string | number)[] = [];

  constructor(private readonly source?: string) {}

  fail(what: string): never {
    const where: { source?: string; path?: string } = {};
    if (this.source !== undefined) where.source = this.source;
    where.path = formatPath(this.path);
    throw new ManifestError(what, where);
  }

  value(v: JsonValue, depth: number): string {
    if (depth > MAX_CANONICAL_DEPTH) {
      this.fail(
        `nested deeper than ${MAX_CANONICAL_DEPTH} levels (the reference SDK refuses to canonicalize it)`,
      );
    }
    if (v === null) return 'null';
    switch (typeof v) {
      case 'string':
        return this.quote(v);
      case 'boolean':
        return v ? 'true' : 'false';
    }
    if (v instanceof JsonNumber) return this.number(v);
    if (Array.isArray(v)) {
      if (v.length === 0) return '[]';
      let out = '[';
      for (let i = 0; i < v.length; i++) {
        this.path.push(i);
        out += (i === 0 ? '' : ',') + this.value(v[i]!, depth + 1);
        this.path.pop();
      }
      return `${out}]`;
    }
    return this.object(v, depth + 1);
  }

  /** One member's value at `depth`, named in error messages. */
  member(key: string, v: JsonValue, depth: number): string {
    this.path.push(key);
    const out = this.value(v, depth);
    this.path.pop();
    return out;
  }

  /** An object whose member values sit at `depth` (the SDK's `_serialize_dict` depth). */
  object(obj: JsonObject, depth: number): string {
    const keys: string[] = [];
    const values: JsonValue[] = [];
    let astral = false;
    obj.forEach((v, k) => {
      if (v === null) return;
      keys.push(k);
      values.push(v);
      if (!astral && !PLAIN.test(k) && HAS_SURROGATE.test(k)) astral = true;
    });
    // UTF-16 order equals code point order unless a key holds a surrogate.
    sortMembers(keys, values, astral);
    let out = '{';
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i]!;
      this.path.push(k);
      out += `${i === 0 ? '' : ','}${this.quote(k)}:${this.value(values[i]!, depth)}`;
      this.path.pop();
    }
    return `${out}}`;
  }

  number(n: JsonNumber): string {
    if (n.isInteger) return n.text === '-0' ? '0' : n.text;
    const f = n.toNumber();
    if (!Number.isFinite(f))
      this.fail(`number ${n.text} is not finite (NaN and Infinity have no canonical form)`);
    return pythonFloatRepr(f);
  }

  quote(s: string): string {
    if (PLAIN.test(s)) return `"${s}"`;
    if (HAS_SURROGATE.test(s) && LONE_SURROGATE.test(s)) {
      this.fail('string holds a lone surrogate (not Unicode text; the SDK cannot encode it)');
    }
    return escapeString(s.normalize('NFC'));
  }
}

/** Printable ASCII other than `"` and `\`: already NFC, written as is. */
const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;
const HAS_SURROGATE = /[\uD800-\uDFFF]/;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function escapeString(s: string): string {
  let out = '"';
  let chunk = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    let esc: string;
    if (c === 0x22) esc = '\\"';
    else if (c === 0x5c) esc = '\\\\';
    else if (c >= 0x20 && c < 0x7f) continue;
    else if (c === 0x08) esc = '\\b';
    else if (c === 0x0c) esc = '\\f';
    else if (c === 0x0a) esc = '\\n';
    else if (c === 0x0d) esc = '\\r';
    else if (c === 0x09) esc = '\\t';
    else if (c <= 0x1f || (c >= 0x7f && c <= 0x9f) || c === 0x2028 || c === 0x2029) {
      esc = `\\u${c.toString(16).padStart(4, '0')}`;
    } else continue;
    out += s.slice(chunk, i) + esc;
    chunk = i + 1;
  }
  return `${out + s.slice(chunk)}"`;
}

/** Sorts names (and their values alongside) by code point; insertion sort for the usual handful. */
function sortMembers(keys: string[], values: JsonValue[], astral: boolean): void {
  const n = keys.length;
  if (n > 16) {
    const order = keys.map((_, i) => i);
    order.sort(
      astral
        ? (a, b) => compareCodePoints(keys[a]!, keys[b]!)
        : (a, b) => (keys[a]! < keys[b]! ? -1 : keys[a]! > keys[b]! ? 1 : 0),
    );
    const k2 = order.map((i) => keys[i]!);
    const v2 = order.map((i) => values[i]!);
    for (let i = 0; i < n; i++) {
      keys[i] = k2[i]!;
      values[i] = v2[i]!;
    }
    return;
  }
  for (let i = 1; i < n; i++) {
    const k = keys[i]!;
    const v = values[i]!;
    let j = i - 1;
    while (j >= 0 && (astral ? compareCodePoints(keys[j]!, k) > 0 : keys[j]! > k)) {
      keys[j + 1] = keys[j]!;
      values[j + 1] = values[j]!;
      j--;
    }
    keys[j + 1] = k;
    values[j + 1] = v;
  }
}

/** Orders strings by Unicode code point, as Python's str comparison does. */
export function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    // Surrogates (astral code points) sort above U+E000..U+FFFF by code point, below them in UTF-16.
    return rankUnit(x) - rankUnit(y);
  }
  return a.length - b.length;
}

function rankUnit(c: number): number {
  if (c >= 0xe000) return c - 0x800;
  if (c >= 0xd800) return c + 0x2000;
  return c;
}

/**
 * The SDK's float formatting: integral values below 1e15 as ints, otherwise Python's repr():
 * shortest round-trip digits, fixed notation for decimal exponents -4..15, else `d.ddde±XX`.
 */
export function pythonFloatRepr(f: number): string {
  if (Number.isInteger(f) && Math.abs(f) < 1e15) return String(f === 0 ? 0 : f);
  const sign = f < 0 ? '-' : '';
  const { digits, exponent } = shortestDigits(Math.abs(f));
  if (exponent < -4 || exponent >= 16) {
    const mantissa = digits.length === 1 ? digits : `${digits[0]}.${digits.slice(1)}`;
    const e = Math.abs(exponent);
    return `${sign}${mantissa}e${exponent < 0 ? '-' : '+'}${e < 10 ? `0${e}` : e}`;
  }
  if (exponent >= 0) {
    const whole = digits.slice(0, exponent + 1).padEnd(exponent + 1, '0');
    const frac = digits.slice(exponent + 1);
    return `${sign}${whole}.${frac === '' ? '0' : frac}`;
  }
  return `${sign}0.${'0'.repeat(-exponent - 1)}${digits}`;
}

/** Shortest round-trip significant digits of x > 0 and the decimal exponent of the first one. */
function shortestDigits(x: number): { digits: string; exponent: number } {
  // Number#toString picks the shortest round-trip digits closest to x, as Python's repr does.
  const s = String(x);
  const e = s.indexOf('e');
  const mantissa = e === -1 ? s : s.slice(0, e);
  const exp = e === -1 ? 0 : Number(s.slice(e + 1));
  const dot = mantissa.indexOf('.');
  const whole = dot === -1 ? mantissa : mantissa.slice(0, dot);
  let all = dot === -1 ? mantissa : whole + mantissa.slice(dot + 1);
  let point = whole.length + exp;
  let lead = 0;
  while (all.charCodeAt(lead) === 48) lead++;
  all = all.slice(lead);
  point -= lead;
  let end = all.length;
  while (end > 1 && all.charCodeAt(end - 1) === 48) end--;
  return { digits: all.slice(0, end), exponent: point - 1 };
}
