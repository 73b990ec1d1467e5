/**
 * Each place the SDK's canonical JSON departs from RFC 8785 is pinned here by name, with the
 * bytes RFC 8785 would give for contrast. Reproducing the SDK is the requirement: verifiers run it.
 */
import { describe, expect, it } from 'vitest';
import {
  canonicalize,
  JsonNumber,
  ManifestError,
  parseJson,
  pythonFloatRepr,
  signingPreImage,
} from '../../src/manifest/index';

const canon = (json: string) => canonicalize(parseJson(json));

describe('SDK departures from RFC 8785', () => {
  it('drops object members whose value is null (RFC 8785 keeps them); array nulls stay', () => {
    expect(canon('{"a":null,"b":[null],"c":{"d":null}}')).toBe('{"b":[null],"c":{}}');
  });

  it('sorts keys by code point, not UTF-16 code units (astral after U+FB01; RFC 8785 puts it before)', () => {
    expect(canon('{"\\ud83d\\ude00":1,"\\ufb01":2}')).toBe('{"ﬁ":2,"😀":1}');
  });

  it('sorts keys as parsed, then NFC-normalizes them (order differs from sorting normalized keys)', () => {
    // "e\u0301z" (starts with U+0065) sorts before "\u00e9" (U+00E9); after NFC it reads "éz" before "é".
    expect(canon('{"\\u00e9":1,"e\\u0301z":2}')).toBe('{"éz":2,"é":1}');
  });

  it('writes both members when NFC makes two keys equal (a duplicate key in canonical output)', () => {
    expect(canon('{"\\u00e9":1,"e\\u0301":2}')).toBe('{"é":2,"é":1}');
  });

  it('NFC-normalizes every string value (RFC 8785 does not normalize)', () => {
    expect(canon('"Cafe\\u0301"')).toBe('"Café"');
  });

  it('does not apply compatibility normalization (NFKC): U+FB01 stays a ligature', () => {
    expect(canon('"\\ufb01"')).toBe('"ﬁ"');
  });

  it('escapes DEL and C1 controls as \\u00XX (RFC 8785 writes them raw)', () => {
    expect(canon('"\\u007f\\u0080\\u009f\\u00a0"')).toBe('"\\u007f\\u0080\\u009f\u00a0"');
  });

  it('escapes U+2028 and U+2029 as \\u2028/\\u2029 (RFC 8785 writes them raw)', () => {
    expect(canon('"\\u2028\\u2029"')).toBe('"\\u2028\\u2029"');
  });

  it('uses lowercase hex in \\u escapes and short escapes for \\b \\f \\n \\r \\t, and leaves / raw', () => {
    expect(canon('"\\u001F\\u000b\\b\\f\\n\\r\\t\\/"')).toBe('"\\u001f\\u000b\\b\\f\\n\\r\\t/"');
  });

  it('writes ints by their exact digits, beyond 2^53 too (RFC 8785 rounds to a double)', () => {
    expect(canon('[9007199254740993,-123456789012345678901234567890]')).toBe(
      '[9007199254740993,-123456789012345678901234567890]',
    );
  });

  it('writes integral floats below 1e15 as ints (1.0 -> 1, 1e2 -> 100, -0.0 -> 0)', () => {
    expect(canon('[1.0,1e2,-0.0,0.5e1,999999999999999.0]')).toBe('[1,100,0,5,999999999999999]');
  });

  it('writes integral floats from 1e15 as Python repr: 1000000000000000.0 (RFC 8785: 1000000000000000)', () => {
    expect(canon('[1e15,4503599627370496.0]')).toBe('[1000000000000000.0,4503599627370496.0]');
  });

  it('uses Python exponent notation from 1e16: 1e+16 (RFC 8785 keeps plain digits up to 1e21)', () => {
    expect(canon('[1e16,1.5e17,1e21]')).toBe('[1e+16,1.5e+17,1e+21]');
  });

  it('uses Python exponent notation below 1e-4 with two-digit exponents: 1e-05 (RFC 8785: 0.00001)', () => {
    expect(canon('[0.0001,0.00001,1e-7,2.5e-05]')).toBe('[0.0001,1e-05,1e-07,2.5e-05]');
  });

  it('keeps shortest round-trip digits for other floats', () => {
    expect(canon('[0.1,1.5,123456789.125,5e-324,1.7976931348623157e308]')).toBe(
      '[0.1,1.5,123456789.125,5e-324,1.7976931348623157e+308]',
    );
  });

  it('tells an int from a float by its text: 1e16 is a float, 10000000000000000 an int', () => {
    expect(canon('[1e16,10000000000000000]')).toBe('[1e+16,10000000000000000]');
  });

  it('"-0" as an int is 0', () => {
    expect(canon('-0')).toBe('0');
  });

  it('refuses nesting deeper than 64 (a value inside 65 containers), allows 64', () => {
    const nested = (n: number) => `${'['.repeat(n)}${']'.repeat(n)}`;
    expect(canon(nested(65))).toBe(nested(65));
    expect(() => canon(nested(66))).toThrow(/nested deeper than 64/);
    expect(canon(`${'['.repeat(64)}1${']'.repeat(64)}`)).toBe(`${'['.repeat(64)}1${']'.repeat(64)}`);
    expect(() => canon(`${'['.repeat(65)}1${']'.repeat(65)}`)).toThrow(ManifestError);
  });

  it('counts depth the same way through objects', () => {
    const nested = (n: number) => `${'{"a":'.repeat(n)}1${'}'.repeat(n)}`;
    expect(() => canon(nested(64))).not.toThrow();
    expect(() => canon(nested(65))).toThrow(/field a\.a\.a\.a\.\.\.a\.a \(65 levels deep\)/);
  });
});

describe('signing pre-image quirks', () => {
  const base = '"manifest_id":"m","version":"0.1"';

  it('replaces hitl_record.approvals by []', () => {
    const pre = Buffer.from(
      signingPreImage(parseJson(`{${base},"hitl_record":{"required":true,"approvals":[{"by":"a"}]}}`)),
    );
    expect(pre.toString()).toBe(
      '{"hitl_record":{"approvals":[],"required":true},"manifest_id":"m","version":"0.1"}',
    );
  });

  it('adds approvals: [] to a hitl_record that has none (the SDK sets it unconditionally)', () => {
    const pre = Buffer.from(signingPreImage(parseJson(`{${base},"hitl_record":{"required":false}}`)));
    expect(pre.toString()).toBe(
      '{"hitl_record":{"approvals":[],"required":false},"manifest_id":"m","version":"0.1"}',
    );
  });

  it('turns approvals: null into [] rather than dropping it', () => {
    const pre = Buffer.from(signingPreImage(parseJson(`{${base},"hitl_record":{"approvals":null}}`)));
    expect(pre.toString()).toBe('{"hitl_record":{"approvals":[]},"manifest_id":"m","version":"0.1"}');
  });

  it('leaves out members outside signed_fields (signature, attestation, transparency_log_entry, unknown ones)', () => {
    const pre = Buffer.from(
      signingPreImage(
        parseJson(`{${base},"signature":{"x":1},"attestation":{},"transparency_log_entry":{},"extra":1}`),
      ),
    );
    expect(pre.toString()).toBe(`{${base}}`);
  });

  it('leaves out a null signed member and a null hitl_record', () => {
    const pre = Buffer.from(signingPreImage(parseJson(`{${base},"agent_id":null,"hitl_record":null}`)));
    expect(pre.toString()).toBe(`{${base}}`);
  });

  it('is unaffected by nesting too deep in a member outside signed_fields', () => {
    const deep = `${'['.repeat(80)}${']'.repeat(80)}`;
    expect(() => signingPreImage(parseJson(`{${base},"attestation":${deep}}`))).not.toThrow();
    expect(() => signingPreImage(parseJson(`{${base},"intent":${deep}}`))).toThrow(/field intent/);
  });
});

describe('pythonFloatRepr', () => {
  it.each([
    [0.1, '0.1'],
    [1e22, '1e+22'],
    [-1.5e-10, '-1.5e-10'],
    [123.456, '123.456'],
    [1e15 + 0.5, '1000000000000000.5'],
    [2 ** 60, '1.152921504606847e+18'],
    [0.0001, '0.0001'],
  ])('%d -> %s', (f, text) => {
    expect(pythonFloatRepr(f)).toBe(text);
  });

  it('refuses non-finite numbers', () => {
    expect(() => canonicalize(new JsonNumber('1e999', false))).toThrow(/not finite/);
  });
});
