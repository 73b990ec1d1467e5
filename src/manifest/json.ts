/**
 * Lossless JSON: reads what the reference SDK's Python `json` reads and keeps what it keeps.
 * Numbers keep their text (Python tells an int from a float by it, and keeps big ints exact);
 * objects are Maps, so member order survives and a duplicate key resolves as Python's dict
 * does (the last value, at the first key's position). Input the SDK could not canonicalize
 * (NaN, Infinity, overflowing floats, lone surrogates) is refused with the field path.
 */
import { formatPath, ManifestError } from './errors';

/** A JSON number, kept as its source text. */
export class JsonNumber {
  readonly text: string;
  /** True when Python's json reads the text as an int (no fraction, no exponent). */
  readonly isInteger: boolean;

  constructor(text: string, isInteger?: boolean) {
    if (isInteger === undefined) {
      if (!NUMBER_TEXT.test(text)) throw new ManifestError(`${JSON.stringify(text)} is not a JSON number`);
      isInteger = !/[.eE]/.test(text);
    }
    this.text = text;
    this.isInteger = isInteger;
  }

  /** The number as a double (exact for floats; may round for ints beyond 2^53). */
  toNumber(): number {
    return Number(this.text);
  }

  toString(): string {
    return this.text;
  }

  /** A JsonNumber for a JS number or bigint: integral numbers become ints, others floats. */
  static of(value: number | bigint): JsonNumber {
    if (typeof value === 'bigint') return new JsonNumber(value.toString(), true);
    if (!Number.isFinite(value)) throw new ManifestError(`${value} cannot be written as JSON`);
    if (Number.isInteger(value) && Math.abs(value) < 1e21)
      return new JsonNumber(Object.is(value, -0) ? '0' : value.toFixed(0), true);
    return new JsonNumber(String(value), false);
  }
}

const NUMBER_TEXT = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?$/;

export type JsonObject = Map<string, JsonValue>;
export type JsonArray = JsonValue[];
export type JsonValue = null | boolean | string | JsonNumber | JsonArray | JsonObject;

/** Where a top-level member sits in the source text (for splicing without re-serializing). */
export interface MemberSpan {
  readonly key: string;
  readonly keyStart: number;
  readonly valueStart: number;
  readonly valueEnd: number;
}

export interface ParsedDocument {
  readonly text: string;
  readonly root: JsonValue;
  /** Top-level object members in source order, duplicates included; null when the root is not an object. */
  readonly members: MemberSpan[] | null;
  /** Index of the root object's `{` and `}`; -1 when the root is not an object. */
  readonly open: number;
  readonly close: number;
  /**
   * Paths of members whose name repeats an earlier one in the same object, at any depth. The
   * parse keeps Python's reading (the last value wins); strict callers refuse the document,
   * as I-JSON (RFC 7493 §2.3) says.
   */
  readonly duplicates: string[];
}

/** Larger documents are refused before parsing: no agent manifest comes near this. */
export const MAX_DOCUMENT_CHARS = 8 * 1024 * 1024;
/** Python's int() refuses longer digit strings (CPython's int_max_str_digits). */
const MAX_INT_DIGITS = 4300;
/** Guard against stack exhaustion; the SDK's own canonical-form limit (64) is enforced by canonicalize. */
const MAX_PARSE_DEPTH = 512;

/**
 * Stricter reading for a COSE payload (docs/upstream/agent-manifest-cose-envelope-v0.2.md §4, §6
 * and AM-VEC-COSE-010/013): a duplicate member name is refused rather than resolved, and nesting
 * is limited to what the canonical form accepts.
 */
export interface ParseOptions {
  rejectDuplicateKeys?: boolean;
  maxDepth?: number;
}

export function parseJson(text: string, source?: string, options?: ParseOptions): JsonValue {
  return parseDocument(text, source, options).root;
}

export function parseDocument(text: string, source?: string, options: ParseOptions = {}): ParsedDocument {
  if (text.length > MAX_DOCUMENT_CHARS) {
    throw new ManifestError(
      `document is ${text.length} characters, over the ${MAX_DOCUMENT_CHARS}-character limit`,
      withSource(source),
    );
  }
  return new Parser(
    text,
    source,
    options.rejectDuplicateKeys ?? false,
    options.maxDepth ?? MAX_PARSE_DEPTH,
  ).document();
}

function withSource(source: string | undefined): { source?: string } {
  return source === undefined ? {} : { source };
}

class Parser {
  private pos = 0;
  private readonly path: (string | number)[] = [];
  private members: MemberSpan[] | null = null;
  private open = -1;
  private close = -1;
  private readonly duplicates: string[] = [];

  constructor(
    private readonly text: string,
    private readonly source: string | undefined,
    private readonly rejectDuplicates = false,
    private readonly maxDepth = MAX_PARSE_DEPTH,
  ) {}

  document(): ParsedDocument {
    const t = this.text;
    if (t.charCodeAt(0) === 0xfeff)
      this.fail('starts with a byte-order mark (U+FEFF); save it as UTF-8 without one', 0);
    this.skipWs();
    if (this.pos >= t.length) this.fail('is empty: expected a JSON value');
    if (t.charCodeAt(this.pos) === 123) {
      this.members = [];
      this.open = this.pos;
    }
    const root = this.value(0);
    if (this.members !== null) this.close = this.pos - 1;
    this.skipWs();
    if (this.pos < t.length) this.fail('has extra data after the JSON value');
    return {
      text: t,
      root,
      members: this.members,
      open: this.open,
      close: this.close,
      duplicates: this.duplicates,
    };
  }

  private fail(what: string, at = this.pos): never {
    const { line, column } = lineColumn(this.text, at);
    const where: { source?: string; path?: string } = withSource(this.source);
    const path = formatPath(this.path);
    if (path !== '') where.path = path;
    throw new ManifestError(`${what} (line ${line}, column ${column})`, where);
  }

  private skipWs(): void {
    const t = this.text;
    let i = this.pos;
    for (;;) {
      const c = t.charCodeAt(i);
      if (c === 32 || c === 10 || c === 13 || c === 9) i++;
      else break;
    }
    this.pos = i;
  }

  private value(depth: number): JsonValue {
    this.skipWs();
    const t = this.text;
    const c = t.charCodeAt(this.pos);
    switch (c) {
      case 123:
        return this.object(depth + 1);
      case 91:
        return this.array(depth + 1);
      case 34:
        return this.string();
      case 116:
        return this.literal('true', true);
      case 102:
        return this.literal('false', false);
      case 110:
        return this.literal('null', null);
      case 78:
        if (t.startsWith('NaN', this.pos)) this.fail('NaN is not JSON and has no canonical form');
        break;
      case 73:
        if (t.startsWith('Infinity', this.pos)) this.fail('Infinity is not JSON and has no canonical form');
        break;
      default:
        if (c === 45 || (c >= 48 && c <= 57)) return this.number();
    }
    if (this.pos >= t.length) this.fail('ends early: expected a JSON value');
    return this.fail(`unexpected character ${describeChar(t, this.pos)}: expected a JSON value`);
  }

  private literal<T extends JsonValue>(word: string, result: T): T {
    if (!this.text.startsWith(word, this.pos)) {
      this.fail(`unexpected character ${describeChar(this.text, this.pos)}: expected a JSON value`);
    }
    this.pos += word.length;
    return result;
  }

  private number(): JsonNumber {
    const t = this.text;
    const start = this.pos;
    let i = start;
    let isInteger = true;
    if (t.charCodeAt(i) === 45) {
      i++;
      if (t.startsWith('Infinity', i)) this.fail('-Infinity is not JSON and has no canonical form', start);
    }
    let c = t.charCodeAt(i);
    if (c === 48) i++;
    else if (c >= 49 && c <= 57) {
      do i++;
      while (isDigit(t.charCodeAt(i)));
    } else this.fail('invalid number: expected a digit', i);
    c = t.charCodeAt(i);
    if (c === 46) {
      isInteger = false;
      i++;
      if (!isDigit(t.charCodeAt(i))) this.fail('invalid number: expected a digit after the decimal point', i);
      do i++;
      while (isDigit(t.charCodeAt(i)));
      c = t.charCodeAt(i);
    }
    if (c === 101 || c === 69) {
      isInteger = false;
      i++;
      c = t.charCodeAt(i);
      if (c === 43 || c === 45) i++;
      if (!isDigit(t.charCodeAt(i))) this.fail('invalid number: expected a digit in the exponent', i);
      do i++;
      while (isDigit(t.charCodeAt(i)));
    }
    const text = t.slice(start, i);
    if (isInteger) {
      if (text.length > MAX_INT_DIGITS) {
        this.fail(`integer has more than ${MAX_INT_DIGITS} digits (Python's int() refuses it)`, start);
      }
    } else if (!Number.isFinite(Number(text))) {
      this.fail(
        `number ${text} overflows a double (Python reads it as Infinity, which has no canonical form)`,
        start,
      );
    }
    this.pos = i;
    return new JsonNumber(text, isInteger);
  }

  private string(): string {
    const t = this.text;
    const start = this.pos + 1;
    // Native search for the closing quote, then one regex pass, beats a per-character loop.
    const end = t.indexOf('"', start);
    if (end === -1) return this.fail('unterminated string', start - 1);
    const s = t.slice(start, end);
    if (NEEDS_SLOW_PATH.test(s)) return this.stringSlow(start, start);
    this.pos = end + 1;
    return s;
  }

  /** Strings with escapes, control characters or surrogates. */
  private stringSlow(start: number, from: number): string {
    const t = this.text;
    const n = t.length;
    let out = t.slice(start, from);
    let sawSurrogate = false;
    let i = from;
    let chunk = i;
    while (i < n) {
      const c = t.charCodeAt(i);
      if (c === 34) {
        out += t.slice(chunk, i);
        if (sawSurrogate && LONE_SURROGATE.test(out)) {
          const m = LONE_SURROGATE.exec(out)!;
          this.fail(
            `string holds a lone surrogate \\u${m[0].charCodeAt(0).toString(16)} (not Unicode text; the SDK cannot encode it)`,
            start - 1,
          );
        }
        this.pos = i + 1;
        return out;
      }
      if (c < 32) {
        this.fail(
          `raw control character U+${c.toString(16).padStart(4, '0').toUpperCase()} in a string (escape it)`,
          i,
        );
      }
      if ((c & 0xf800) === 0xd800) {
        sawSurrogate = true;
        i++;
        continue;
      }
      if (c !== 92) {
        i++;
        continue;
      }
      out += t.slice(chunk, i);
      const e = t.charCodeAt(i + 1);
      switch (e) {
        case 34:
          out += '"';
          break;
        case 92:
          out += '\\';
          break;
        case 47:
          out += '/';
          break;
        case 98:
          out += '\b';
          break;
        case 102:
          out += '\f';
          break;
        case 110:
          out += '\n';
          break;
        case 114:
          out += '\r';
          break;
        case 116:
          out += '\t';
          break;
        case 117: {
          const hex = t.slice(i + 2, i + 6);
          if (!/^[0-9a-fA-F]{4}$/.test(hex)) this.fail('invalid \\u escape: expected four hex digits', i);
          const code = Number.parseInt(hex, 16);
          if ((code & 0xf800) === 0xd800) sawSurrogate = true;
          out += String.fromCharCode(code);
          i += 6;
          chunk = i;
          continue;
        }
        default:
          this.fail(`invalid escape ${describeChar(t, i + 1, '\\')}`, i);
      }
      i += 2;
      chunk = i;
    }
    return this.fail('unterminated string', start - 1);
  }

  private array(depth: number): JsonArray {
    if (depth > this.maxDepth) this.fail(`nesting deeper than ${this.maxDepth}`);
    const t = this.text;
    this.pos++;
    const out: JsonValue[] = [];
    this.skipWs();
    if (t.charCodeAt(this.pos) === 93) {
      this.pos++;
      return out;
    }
    for (;;) {
      this.path.push(out.length);
      out.push(this.value(depth));
      this.path.pop();
      this.skipWs();
      const c = t.charCodeAt(this.pos);
      if (c === 44) {
        this.pos++;
        continue;
      }
      if (c === 93) {
        this.pos++;
        return out;
      }
      this.path.push(out.length - 1);
      this.fail(
        this.pos >= t.length
          ? "ends early: expected ',' or ']'"
          : `expected ',' or ']', found ${describeChar(t, this.pos)}`,
      );
    }
  }

  private object(depth: number): JsonObject {
    if (depth > this.maxDepth) this.fail(`nesting deeper than ${this.maxDepth}`);
    const t = this.text;
    const top = depth === 1 ? this.members : null;
    this.pos++;
    const out: JsonObject = new Map();
    this.skipWs();
    if (t.charCodeAt(this.pos) === 125) {
      this.pos++;
      return out;
    }
    for (;;) {
      this.skipWs();
      if (t.charCodeAt(this.pos) !== 34) {
        this.fail(
          this.pos >= t.length
            ? 'ends early: expected a member name'
            : `expected a member name in double quotes, found ${describeChar(t, this.pos)}`,
        );
      }
      const keyStart = this.pos;
      const key = this.string();
      this.path.push(key);
      this.skipWs();
      if (t.charCodeAt(this.pos) !== 58) this.fail(`expected ':' after the member name`);
      this.pos++;
      this.skipWs();
      if (this.rejectDuplicates && out.has(key)) {
        this.fail(`member name ${JSON.stringify(key)} appears twice (refused, not resolved)`, keyStart);
      }
      const valueStart = this.pos;
      const value = this.value(depth);
      if (top !== null) top.push({ key, keyStart, valueStart, valueEnd: this.pos });
      if (out.has(key)) this.duplicates.push(formatPath(this.path));
      out.set(key, value);
      this.skipWs();
      const c = t.charCodeAt(this.pos);
      if (c === 44) {
        this.path.pop();
        this.pos++;
        continue;
      }
      if (c === 125) {
        this.path.pop();
        this.pos++;
        return out;
      }
      this.fail(
        this.pos >= t.length
          ? "ends early: expected ',' or '}'"
          : `expected ',' or '}', found ${describeChar(t, this.pos)}`,
      );
    }
  }
}

/** A backslash, a raw control character or a surrogate: the string needs decoding or checking. */
const NEEDS_SLOW_PATH = /[\\\x00-\x1f\uD800-\uDFFF]/;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

function describeChar(text: string, at: number, prefix = ''): string {
  if (at >= text.length) return 'end of input';
  const cp = text.codePointAt(at)!;
  if (cp >= 0x21 && cp <= 0x7e) return `'${prefix}${String.fromCodePoint(cp)}'`;
  return `${prefix}U+${cp.toString(16).toUpperCase().padStart(4, '0')}`;
}

function lineColumn(text: string, at: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = text.indexOf('\n'); i !== -1 && i < at; i = text.indexOf('\n', i + 1)) {
    line++;
    lineStart = i + 1;
  }
  return { line, column: at - lineStart + 1 };
}

/** Compact JSON that keeps member order and number texts; strings as JSON.stringify writes them. */
export function stringifyJson(value: JsonValue): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
  }
  if (value instanceof JsonNumber) return value.text;
  if (Array.isArray(value)) return `[${value.map(stringifyJson).join(',')}]`;
  let out = '{';
  let first = true;
  for (const [k, v] of value) {
    out += `${first ? '' : ','}${JSON.stringify(k)}:${stringifyJson(v)}`;
    first = false;
  }
  return `${out}}`;
}

export function isJsonObject(value: JsonValue | undefined): value is JsonObject {
  return value instanceof Map;
}

/** The member's value, or undefined when absent (a present null is null). */
export function getMember(obj: JsonObject, key: string): JsonValue | undefined {
  return obj.get(key);
}

/** Sets a member; an existing key keeps its position (as a Python dict does). */
export function setMember(obj: JsonObject, key: string, value: JsonValue): JsonObject {
  obj.set(key, value);
  return obj;
}

export function deleteMember(obj: JsonObject, key: string): boolean {
  return obj.delete(key);
}

/** The member as a string, or null when absent, null or not a string. */
export function getString(obj: JsonObject, key: string): string | null {
  const v = obj.get(key);
  return typeof v === 'string' ? v : null;
}

/**
 * Converts a plain JS value (objects, arrays, strings, numbers, booleans, null) to a JsonValue.
 * Integral numbers become ints, others floats; use JsonNumber directly for exact texts.
 */
export function fromPlain(value: unknown, path: (string | number)[] = []): JsonValue {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return value;
  if (typeof value === 'number' || typeof value === 'bigint') return JsonNumber.of(value);
  if (value instanceof JsonNumber) return value;
  if (Array.isArray(value)) return value.map((v, i) => fromPlain(v, [...path, i]));
  if (value instanceof Map) {
    const out: JsonObject = new Map();
    for (const [k, v] of value) out.set(String(k), fromPlain(v, [...path, String(k)]));
    return out;
  }
  if (typeof value === 'object') {
    const out: JsonObject = new Map();
    for (const [k, v] of Object.entries(value)) {
      if (v !== undefined) out.set(k, fromPlain(v, [...path, k]));
    }
    return out;
  }
  throw new ManifestError(`a ${typeof value} is not a JSON value`, { path: formatPath(path) });
}

/** Converts a JsonValue to plain JS (numbers become doubles; ints beyond 2^53 become bigints). */
export function toPlain(value: JsonValue): unknown {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return value;
  if (value instanceof JsonNumber) {
    if (value.isInteger) {
      const n = Number(value.text);
      return Number.isSafeInteger(n) ? n : BigInt(value.text);
    }
    return value.toNumber();
  }
  if (Array.isArray(value)) return value.map(toPlain);
  const out: Record<string, unknown> = {};
  for (const [k, v] of value)
    Object.defineProperty(out, k, {
      value: toPlain(v),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  return out;
}
