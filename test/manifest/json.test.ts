import { describe, expect, it } from 'vitest';
import {
  fromPlain,
  isJsonObject,
  JsonNumber,
  MAX_DOCUMENT_CHARS,
  ManifestError,
  parseDocument,
  parseJson,
  setMember,
  stringifyJson,
  toPlain,
} from '../../src/manifest/index';

function errorOf(fn: () => unknown): ManifestError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ManifestError) return err;
    throw err;
  }
  throw new Error('expected a ManifestError');
}

describe('lossless JSON', () => {
  it('keeps number texts and tells ints from floats', () => {
    const v = parseJson('[1,1.0,1e2,123456789012345678901234567890,-0]') as JsonNumber[];
    expect(v.map((n) => n.text)).toEqual(['1', '1.0', '1e2', '123456789012345678901234567890', '-0']);
    expect(v.map((n) => n.isInteger)).toEqual([true, false, false, true, true]);
  });

  it('resolves duplicate keys as Python: last value at the first position', () => {
    const v = parseJson('{"a":1,"b":2,"a":3}');
    expect(stringifyJson(v)).toBe('{"a":3,"b":2}');
  });

  it('keeps member order, integer-like keys included (a JS object would reorder them)', () => {
    expect(stringifyJson(parseJson('{"b":1,"2":2,"1":3,"__proto__":4}'))).toBe(
      '{"b":1,"2":2,"1":3,"__proto__":4}',
    );
  });

  it('round-trips compact text exactly', () => {
    const text = '{"x":[1.50,2e-3,{"y":null}],"s":"a\\u00e9\\n","t":true}';
    expect(stringifyJson(parseJson(text))).toBe('{"x":[1.50,2e-3,{"y":null}],"s":"aé\\n","t":true}');
  });

  it('set keeps an existing key in place', () => {
    const v = parseJson('{"a":1,"b":2}');
    if (!isJsonObject(v)) throw new Error('object expected');
    setMember(v, 'a', 'z');
    expect(stringifyJson(v)).toBe('{"a":"z","b":2}');
  });

  it('records top-level member spans', () => {
    const doc = parseDocument(' {"a" : 1, "b":[2]} ');
    expect(doc.members!.map((m) => [m.key, doc.text.slice(m.valueStart, m.valueEnd)])).toEqual([
      ['a', '1'],
      ['b', '[2]'],
    ]);
    expect(doc.text[doc.open]).toBe('{');
    expect(doc.text[doc.close]).toBe('}');
  });

  it('converts plain values both ways', () => {
    const v = fromPlain({ a: 1, b: [1.5, 'x', null, true], c: 2n ** 70n });
    expect(stringifyJson(v)).toBe('{"a":1,"b":[1.5,"x",null,true],"c":1180591620717411303424}');
    expect(toPlain(v)).toEqual({ a: 1, b: [1.5, 'x', null, true], c: 2n ** 70n });
  });
});

describe('bad input is refused with source, field path and position', () => {
  it.each([
    ['not JSON', 'nope', /unexpected character 'n'/],
    ['NaN', '{"a":[1,NaN]}', /field a\[1\]: NaN is not JSON/],
    ['Infinity', '{"a":Infinity}', /Infinity is not JSON/],
    ['-Infinity', '{"a":-Infinity}', /-Infinity is not JSON/],
    ['overflowing float', '{"n":1e400}', /field n: number 1e400 overflows a double/],
    ['lone high surrogate', '{"s":"\\ud800x"}', /field s: string holds a lone surrogate \\ud800/],
    ['lone low surrogate', '{"s":"\\udc00"}', /lone surrogate/],
    ['raw control character', '{"s":"a\tb"}', /raw control character U\+0009/],
    ['trailing comma', '{"a":1,}', /expected a member name/],
    ['extra data', '{} {}', /extra data/],
    ['leading zero', '[01]', /expected ',' or ']'/],
    ['byte-order mark', '\ufeff{}', /byte-order mark/],
    ['empty', '   ', /empty/],
    ['unterminated', '{"a":"b', /unterminated string/],
    ['bad escape', '"\\x"', /invalid escape/],
    ['single quotes', "{'a':1}", /expected a member name in double quotes/],
  ])('%s', (_name, text, message) => {
    const err = errorOf(() => parseJson(text, 'm.json'));
    expect(err.message).toMatch(message);
    expect(err.message.startsWith('m.json: ')).toBe(true);
    expect(err.message).toMatch(/\(line \d+, column \d+\)$/);
    expect(err.message).not.toContain('\n');
    expect(err.exitCode).toBe(2);
  });

  it('names the line of a syntax error in a multi-line document', () => {
    expect(errorOf(() => parseJson('{\n  "a": 1,\n  "b": ?\n}', 'x')).message).toBe(
      "x: field b: unexpected character '?': expected a JSON value (line 3, column 8)",
    );
  });

  it('refuses a document over the size limit before parsing', () => {
    const big = `"${'a'.repeat(MAX_DOCUMENT_CHARS)}"`;
    expect(errorOf(() => parseJson(big, 'big.json')).message).toMatch(
      /^big\.json: document is \d+ characters, over the/,
    );
  });

  it('refuses ints longer than Python will read', () => {
    expect(() => parseJson('9'.repeat(4301))).toThrow(/more than 4300 digits/);
    expect(() => parseJson('9'.repeat(4300))).not.toThrow();
  });

  it('parses deep nesting up to its guard without exhausting the stack', () => {
    expect(() => parseJson(`${'['.repeat(500)}${']'.repeat(500)}`)).not.toThrow();
    expect(() => parseJson(`${'['.repeat(600)}${']'.repeat(600)}`)).toThrow(/nesting deeper than 512/);
  });

  it('JsonNumber refuses a non-JSON number text', () => {
    expect(() => new JsonNumber('1.')).toThrow(ManifestError);
    expect(() => new JsonNumber('+1')).toThrow(ManifestError);
    expect(new JsonNumber('1e5').isInteger).toBe(false);
  });
});
