/**
 * The small CBOR subset COSE needs (RFC 8949), written here rather than taken from a library:
 * - encoding is deterministic by construction: shortest-form integers and lengths, definite
 *   lengths only, map keys ordered length-first then bytewise (RFC 8949 §4.2.3, the RFC 7049
 *   "canonical" order the reference SDK's `cbor2` uses with `canonical=True`, ADR-0013); for the
 *   headers COSE carries here (small integer and short text labels) that order equals §4.2.1's;
 * - decoding is strict for untrusted input: one item and nothing after it, definite lengths only,
 *   a duplicate map key refused, a nesting limit, lengths checked against the bytes that are left
 *   before anything is allocated, text strings valid UTF-8.
 * Floats are decoded (half, single, double) so that foreign unprotected headers can be shown, and
 * never produced. Why not a library: see the README ("CBOR").
 */
import { ManifestError } from './errors';

/** A map keeps its entries in wire order; keys compare by their encoding. */
export class CborMap {
  readonly entries: [CborValue, CborValue][] = [];

  get size(): number {
    return this.entries.length;
  }

  /** The value under an integer or text label (the only labels COSE headers use). */
  get(label: number | string): CborValue | undefined {
    for (const [k, v] of this.entries) if (k === label) return v;
    return undefined;
  }

  has(label: number | string): boolean {
    return this.get(label) !== undefined;
  }

  static of(entries: [CborValue, CborValue][]): CborMap {
    const m = new CborMap();
    m.entries.push(...entries);
    return m;
  }
}

export class CborTag {
  constructor(
    readonly tag: number,
    readonly value: CborValue,
  ) {}
}

/** A float as decoded (kept apart from integers, which CBOR tells apart on the wire). */
export class CborFloat {
  constructor(readonly value: number) {}
}

/** A simple value other than false, true, null and undefined. */
export class CborSimple {
  constructor(readonly value: number) {}
}

export type CborValue =
  | number
  | bigint
  | string
  | Uint8Array
  | boolean
  | null
  | undefined
  | CborValue[]
  | CborMap
  | CborTag
  | CborFloat
  | CborSimple;

export class CborError extends ManifestError {}

// ---------------------------------------------------------------------------------------------
// Encoding

/** Deterministic encoding of `value` (integers must be safe integers or bigints; no floats). */
export function encodeCbor(value: CborValue): Uint8Array {
  const w = new CborWriter();
  w.value(value);
  return w.finish();
}

/**
 * Writes into one growing buffer: no per-byte arrays, no BigInt for ordinary integers, and each
 * map value written once in place (only map keys are encoded apart, to be sorted). The re-sign
 * step encodes two ~1.3 KB structures per twin (the Sig_structure and the envelope), so this sits
 * on its hot path (BENCHMARKS.md, "Where the time goes").
 */
class CborWriter {
  private buf = Buffer.allocUnsafe(256);
  private pos = 0;

  finish(): Uint8Array {
    // A copy of exactly the bytes written, so the result owns its memory (no slab retained).
    return new Uint8Array(this.buf.subarray(0, this.pos));
  }

  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(bigger, 0, 0, this.pos);
    this.buf = bigger;
  }

  private byte(b: number): void {
    this.room(1);
    this.buf[this.pos++] = b;
  }

  /** A head with a non-negative argument below 2^53 (lengths, tags, safe integers). */
  head(major: number, n: number): void {
    const m = major << 5;
    if (n < 0) throw new CborError('a CBOR length or argument cannot be negative');
    if (n < 24) this.byte(m | n);
    else if (n < 0x100) {
      this.room(2);
      this.buf[this.pos++] = m | 24;
      this.buf[this.pos++] = n;
    } else if (n < 0x10000) {
      this.room(3);
      this.buf[this.pos++] = m | 25;
      this.buf.writeUInt16BE(n, this.pos);
      this.pos += 2;
    } else if (n < 0x100000000) {
      this.room(5);
      this.buf[this.pos++] = m | 26;
      this.buf.writeUInt32BE(n, this.pos);
      this.pos += 4;
    } else this.bigHead(major, BigInt(n));
  }

  /** A head whose argument needs a bigint (up to 2^64 - 1). */
  bigHead(major: number, v: bigint): void {
    if (v < 0n) throw new CborError('a CBOR length or argument cannot be negative');
    if (v < 0x100000000n) {
      this.head(major, Number(v));
      return;
    }
    if (v >= 0x10000000000000000n) throw new CborError('a CBOR integer must fit in 64 bits');
    this.room(9);
    this.buf[this.pos++] = (major << 5) | 27;
    this.buf.writeBigUInt64BE(v, this.pos);
    this.pos += 8;
  }

  bytes(major: number, b: Uint8Array): void {
    this.head(major, b.length);
    this.room(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  text(s: string): void {
    // Buffer's UTF-8 writer replaces a lone surrogate with U+FFFD, as TextEncoder does.
    const n = Buffer.byteLength(s, 'utf8');
    this.head(3, n);
    this.room(n);
    this.pos += this.buf.write(s, this.pos, n, 'utf8');
  }

  value(v: CborValue): void {
    if (v === false) this.byte(0xf4);
    else if (v === true) this.byte(0xf5);
    else if (v === null) this.byte(0xf6);
    else if (v === undefined) this.byte(0xf7);
    else if (typeof v === 'number') {
      if (!Number.isSafeInteger(v)) {
        throw new CborError(`${v} is not an integer rotor encodes (floats are never produced)`);
      }
      if (v >= 0) this.head(0, v);
      else this.head(1, -1 - v);
    } else if (typeof v === 'bigint') {
      if (v >= 0n) this.bigHead(0, v);
      else this.bigHead(1, -1n - v);
    } else if (typeof v === 'string') this.text(v);
    else if (v instanceof Uint8Array) this.bytes(2, v);
    else if (Array.isArray(v)) {
      this.head(4, v.length);
      for (const item of v) this.value(item);
    } else if (v instanceof CborMap) {
      const keyed = v.entries.map(([k, val]) => ({ key: encodeCbor(k), value: val }));
      keyed.sort((a, b) => compareEncodedKeys(a.key, b.key));
      for (let i = 1; i < keyed.length; i++) {
        if (compareEncodedKeys(keyed[i - 1]!.key, keyed[i]!.key) === 0) {
          throw new CborError('a CBOR map cannot hold the same key twice');
        }
      }
      this.head(5, keyed.length);
      for (const e of keyed) {
        this.room(e.key.length);
        this.buf.set(e.key, this.pos);
        this.pos += e.key.length;
        this.value(e.value);
      }
    } else if (v instanceof CborTag) {
      this.head(6, v.tag);
      this.value(v.value);
    } else if (v instanceof CborSimple) {
      if (v.value < 24) this.byte(0xe0 | v.value);
      else {
        this.byte(0xf8);
        this.byte(v.value);
      }
    } else if (v instanceof CborFloat) {
      throw new CborError('rotor never encodes floats');
    } else {
      throw new CborError('not a CBOR value');
    }
  }
}

/** Length-first, then bytewise (RFC 8949 §4.2.3). */
export function compareEncodedKeys(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) return a.length - b.length;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return 0;
}

// ---------------------------------------------------------------------------------------------
// Decoding

export const MAX_CBOR_DEPTH = 32;

export interface DecodeOptions {
  /** Names the input in error messages. */
  source?: string;
  /** What the bytes are, in messages ("envelope", "protected header"). */
  what?: string;
}

/** Decodes exactly one CBOR item; anything after it is refused. */
export function decodeCbor(bytes: Uint8Array, opts: DecodeOptions = {}): CborValue {
  const d = new Decoder(bytes, opts);
  const value = d.item(0);
  if (d.pos !== bytes.length) {
    d.fail(`${bytes.length - d.pos} trailing byte(s) after the CBOR item`, d.pos);
  }
  return value;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

class Decoder {
  pos = 0;

  constructor(
    private readonly bytes: Uint8Array,
    private readonly opts: DecodeOptions,
  ) {}

  fail(what: string, at = this.pos): never {
    const where = this.opts.source === undefined ? {} : { source: this.opts.source };
    throw new CborError(`${this.opts.what ?? 'CBOR'}: ${what} (byte ${at})`, where);
  }

  private byte(): number {
    if (this.pos >= this.bytes.length) this.fail('ends early');
    return this.bytes[this.pos++]!;
  }

  /** The argument of a head: a number when safe, else a bigint. */
  private argument(info: number, start: number): number | bigint {
    if (info < 24) return info;
    let n: number;
    if (info === 24) n = 1;
    else if (info === 25) n = 2;
    else if (info === 26) n = 4;
    else if (info === 27) n = 8;
    else if (info === 31)
      this.fail('indefinite-length items are not accepted (deterministic CBOR only)', start);
    else this.fail(`reserved additional information ${info}`, start);
    if (this.pos + n > this.bytes.length) this.fail('ends early', start);
    let v = 0n;
    for (let i = 0; i < n; i++) v = (v << 8n) | BigInt(this.bytes[this.pos++]!);
    return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  }

  private length(info: number, start: number): number {
    const n = this.argument(info, start);
    if (typeof n === 'bigint' || n > this.bytes.length - this.pos) {
      this.fail(`declares ${n} items or bytes, more than the ${this.bytes.length - this.pos} left`, start);
    }
    return n;
  }

  item(depth: number): CborValue {
    if (depth > MAX_CBOR_DEPTH) this.fail(`nested deeper than ${MAX_CBOR_DEPTH} levels`);
    const start = this.pos;
    const head = this.byte();
    const major = head >> 5;
    const info = head & 0x1f;
    switch (major) {
      case 0:
        return this.argument(info, start);
      case 1: {
        const n = this.argument(info, start);
        if (typeof n === 'number' && n < Number.MAX_SAFE_INTEGER) return -1 - n;
        const v = -1n - BigInt(n);
        return v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v;
      }
      case 2: {
        const n = this.length(info, start);
        const out = this.bytes.slice(this.pos, this.pos + n);
        this.pos += n;
        return out;
      }
      case 3: {
        const n = this.length(info, start);
        const raw = this.bytes.subarray(this.pos, this.pos + n);
        this.pos += n;
        try {
          return utf8.decode(raw);
        } catch {
          return this.fail('a text string is not valid UTF-8', start);
        }
      }
      case 4: {
        const n = this.length(info, start);
        const out: CborValue[] = [];
        for (let i = 0; i < n; i++) out.push(this.item(depth + 1));
        return out;
      }
      case 5: {
        const n = this.length(info, start);
        const map = new CborMap();
        const seen = new Set<string>();
        for (let i = 0; i < n; i++) {
          const keyStart = this.pos;
          const key = this.item(depth + 1);
          const keyBytes = Buffer.from(this.bytes.subarray(keyStart, this.pos)).toString('hex');
          if (seen.has(keyBytes)) this.fail(`map key ${describeKey(key)} appears twice`, keyStart);
          seen.add(keyBytes);
          map.entries.push([key, this.item(depth + 1)]);
        }
        return map;
      }
      case 6: {
        const tag = this.argument(info, start);
        if (typeof tag === 'bigint') this.fail('tag number beyond 2^53', start);
        return new CborTag(tag, this.item(depth + 1));
      }
      default:
        return this.simple(info, start);
    }
  }

  private simple(info: number, start: number): CborValue {
    switch (info) {
      case 20:
        return false;
      case 21:
        return true;
      case 22:
        return null;
      case 23:
        return undefined;
      case 24: {
        const v = this.byte();
        if (v < 32) this.fail(`simple value ${v} in two bytes (not well-formed)`, start);
        return new CborSimple(v);
      }
      case 25:
      case 26:
      case 27: {
        const n = info === 25 ? 2 : info === 26 ? 4 : 8;
        if (this.pos + n > this.bytes.length) this.fail('ends early', start);
        const view = new DataView(this.bytes.buffer, this.bytes.byteOffset + this.pos, n);
        this.pos += n;
        if (n === 2) return new CborFloat(halfToNumber(view.getUint16(0)));
        return new CborFloat(n === 4 ? view.getFloat32(0) : view.getFloat64(0));
      }
      case 31:
        return this.fail('a break byte outside an indefinite-length item', start);
      default:
        if (info < 20) return new CborSimple(info);
        return this.fail(`reserved additional information ${info}`, start);
    }
  }
}

function halfToNumber(h: number): number {
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  const sign = h & 0x8000 ? -1 : 1;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 31) return mant === 0 ? sign * Number.POSITIVE_INFINITY : Number.NaN;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

function describeKey(key: CborValue): string {
  if (typeof key === 'number' || typeof key === 'bigint') return String(key);
  if (typeof key === 'string') return JSON.stringify(key);
  return 'of a composite type';
}

/**
 * A CBOR value as JSON-compatible data for display (`rotor manifest inspect`): byte strings as
 * `{"bstr_hex": ...}`, tags as `{"tag": n, "value": ...}`, maps as objects when every key is an
 * integer or a string (integer keys written as their decimal text), else as `{"map": [[k, v]...]}`.
 */
export function cborToJson(v: CborValue): unknown {
  if (v === undefined) return { undefined: true };
  if (v === null || typeof v === 'boolean' || typeof v === 'string') return v;
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return v.toString();
  if (v instanceof Uint8Array) return { bstr_hex: Buffer.from(v).toString('hex') };
  if (Array.isArray(v)) return v.map(cborToJson);
  if (v instanceof CborTag) return { tag: v.tag, value: cborToJson(v.value) };
  if (v instanceof CborFloat) return Number.isFinite(v.value) ? v.value : String(v.value);
  if (v instanceof CborSimple) return { simple: v.value };
  const simpleKeys = v.entries.every(([k]) => typeof k === 'number' || typeof k === 'string');
  if (!simpleKeys) return { map: v.entries.map(([k, val]) => [cborToJson(k), cborToJson(val)]) };
  const out: Record<string, unknown> = {};
  for (const [k, val] of v.entries) {
    Object.defineProperty(out, String(k), {
      value: cborToJson(val),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return out;
}
