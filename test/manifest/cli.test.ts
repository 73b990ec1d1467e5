/** The `rotor manifest|revocation|crl` commands, run as a user runs them: stdout data, exact exit codes. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { shared, testPublicKey, upstream, validSigned } from './vectors';

const ROTOR = join(import.meta.dirname, '../../bin/rotor-dev.mjs');
const dir = mkdtempSync(join(tmpdir(), 'rotor-manifest-cli-'));
const file = (name: string, content: string | Buffer) => {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
};

function rotor(args: string[], input?: string | Buffer) {
  const r = spawnSync(process.execPath, [ROTOR, ...args], { input, maxBuffer: 64 * 1024 * 1024 });
  return {
    code: r.status,
    stdout: r.stdout.toString('utf8'),
    stdoutBytes: r.stdout,
    stderr: r.stderr.toString('utf8'),
  };
}

/** Bad input: exit 2, one line on stderr naming the problem, nothing on stdout, no stack trace. */
function expectUsageError(r: ReturnType<typeof rotor>, message: RegExp) {
  expect(r.code).toBe(2);
  expect(r.stdout).toBe('');
  expect(r.stderr).toMatch(message);
  expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
  expect(r.stderr).not.toMatch(/\n\s+at /);
}

const seedFile = file('seed.key', `${shared.key.seed_b64url}\n`);
const pub = shared.key.public_b64url;
const m0 = file('m0.json', shared.manifests[0]!.unsigned_json);
const signed0 = file('s0.json', shared.manifests[0]!.signed_json);
// The SDK vectors test bytes and carry members the schema refuses; a verdict needs a valid manifest
// (same manifest_id as the vectors' first, which their CRL revokes).
const valid0 = file('valid0.json', await validSigned({ expires_at: '2027-05-01T00:00:00Z' }));

describe('rotor manifest (CLI)', () => {
  it('keygen writes a 0600 seed file, prints key_id and public key, and never overwrites', () => {
    const out = join(dir, 'new.key');
    const r = rotor(['manifest', 'keygen', '--out', out, '--print-pub']);
    expect(r.code).toBe(0);
    const printed = JSON.parse(r.stdout);
    expect(printed.key_id).toMatch(/^[0-9a-f]{64}$/);
    expect(Buffer.from(printed.public_key, 'base64url')).toHaveLength(32);
    expect(statSync(out).mode & 0o777).toBe(0o600);
    expect(readFileSync(out, 'utf8')).toMatch(/^[A-Za-z0-9_-]{43}\n$/);
    expect(r.stdout).not.toContain(readFileSync(out, 'utf8').trim());
    expectUsageError(rotor(['manifest', 'keygen', '--out', out]), /already exists/);
  });

  it('canonicalize prints the canonical bytes and nothing else (stdin too)', () => {
    const c = shared.canonical[12]!;
    const r = rotor(['manifest', 'canonicalize', '-'], c.json);
    expect(r.code).toBe(0);
    expect(r.stdoutBytes.toString('base64url')).toBe(c.canonical_b64);
  });

  it('pre-image prints the signing pre-image bytes', () => {
    const r = rotor(['manifest', 'pre-image', m0]);
    expect(r.code).toBe(0);
    expect(r.stdoutBytes.toString('base64url')).toBe(shared.manifests[0]!.pre_image_b64);
  });

  it('sign prints the SDK-identical signed manifest', () => {
    const r = rotor(['manifest', 'sign', m0, '--key', seedFile, '--signed-at', '2026-06-05T10:00:00Z']);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(shared.manifests[0]!.signed_json);
  });

  it('sign -o writes the file and keeps stdout empty', () => {
    const out = join(dir, 'signed-out.json');
    const r = rotor(['manifest', 'sign', m0, '--key', seedFile, '-o', out]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('');
    expect(JSON.parse(readFileSync(out, 'utf8')).signature.key_id).toBe(shared.key.key_id);
  });

  it('verify: VALID exits 0 and prints result, key_id, reason', () => {
    const r = rotor(['manifest', 'verify', valid0, '--public-key', pub, '--now', '2026-06-05T12:00:00Z']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({
      result: 'VALID',
      key_id: shared.key.key_id,
      reason: expect.any(String),
    });
  });

  it('verify: an unknown key is INVALID and exits 1', () => {
    const other = Buffer.from(testPublicKey).reverse().toString('base64url');
    const r = rotor([
      'manifest',
      'verify',
      signed0,
      '--public-key',
      'svh0OG3JSz0EBsTzgIFUmPHScokV7achklT6wH4l1Ew',
    ]);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout).result).toBe('INVALID');
    expect(other).not.toBe(pub);
  });

  it('verify: against a trust anchor file, and REVOKED through a CRL (exit 1)', () => {
    const anchor = file(
      'anchor.json',
      JSON.stringify({
        active_key_id: `sha256:${shared.key.key_id}`,
        keys: [
          {
            key_id: `sha256:${shared.key.key_id}`,
            algorithm: 'Ed25519',
            public_key: pub,
            valid_from: '2026-01-01T00:00:00Z',
          },
        ],
      }),
    );
    expect(rotor(['manifest', 'verify', valid0, '--trust-anchor', anchor]).code).toBe(0);
    const crl = file('crl.jsonl', shared.crl.jsonl);
    const r = rotor(['manifest', 'verify', valid0, '--trust-anchor', anchor, '--crl', crl]);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout).result).toBe('REVOKED');
    expect(r.stderr).toMatch(/line 4 ignored/);
  });

  it('verify: an expired manifest is EXPIRED (exit 1); AM-VEC-003, which omits required members, is INVALID', async () => {
    const expired = file('expired.json', await validSigned());
    const r = rotor(['manifest', 'verify', expired, '--public-key', pub]);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({
      result: 'EXPIRED',
      reason: 'expired at 2026-09-01T00:00:00Z',
    });
    const vec = file('am-vec-003.json', JSON.stringify(upstream('AM-VEC-003').manifest));
    const v = rotor(['manifest', 'verify', vec, '--public-key', pub]);
    expect(v.code).toBe(1);
    expect(JSON.parse(v.stdout)).toMatchObject({
      result: 'INVALID',
      reason: expect.stringMatching(/^schema: /),
    });
  });

  it.each([
    ['no trusted keys', ['manifest', 'verify', 'x.json'], /--public-key B64URL/],
    [
      'a missing file',
      ['manifest', 'verify', join(dir, 'absent.json'), '--public-key', pub],
      /cannot read input .*absent\.json/,
    ],
    ['a bad --now', ['manifest', 'verify', 'x.json', '--public-key', pub, '--now', 'tomorrow'], /--now/],
    [
      'a standard-base64 public key',
      ['manifest', 'verify', 'x.json', '--public-key', 'A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg'],
      /'\+' or '\/'/,
    ],
    [
      'a small-order public key',
      ['manifest', 'verify', 'x.json', '--public-key', 'AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'],
      /small-order/,
    ],
  ])('verify refuses %s with exit 2', (_name, args, message) => {
    expectUsageError(rotor(args), message);
  });
});

describe('bad input never gets a stack trace or a verdict', () => {
  it.each([
    ['not JSON', 'hello', /bad\.json: unexpected character 'h'/],
    ['not an object', '[1,2]', /bad\.json: is not a JSON object/],
    ['NaN', '{"manifest_id":"m","n":NaN}', /field n: NaN is not JSON/],
    ['Infinity', '{"manifest_id":"m","n":Infinity}', /Infinity is not JSON/],
    ['depth over 64', `{"intent":${'['.repeat(70)}${']'.repeat(70)}}`, /field intent.*nested deeper than 64/],
    ['a lone surrogate', '{"intent":"\\ud800"}', /lone surrogate/],
  ])('sign refuses %s with exit 2', (_name, content, message) => {
    const path = file('bad.json', content);
    expectUsageError(rotor(['manifest', 'sign', path, '--key', seedFile]), message);
  });

  it('a 50 MB document is refused before it is read', () => {
    const path = join(dir, 'huge.json');
    writeFileSync(path, Buffer.alloc(50 * 1024 * 1024, 0x20));
    expectUsageError(rotor(['manifest', 'canonicalize', path]), /huge\.json is 52428800 bytes, over the/);
  });

  it('invalid UTF-8 is refused', () => {
    expectUsageError(
      rotor(['manifest', 'canonicalize', file('latin1.json', Buffer.from([0x22, 0xe9, 0x22]))]),
      /not valid UTF-8/,
    );
  });

  it.each([
    ['+ or /', 'AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh+', /'\+' or '\/'/],
    ['padding', 'AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=', /'=' padding/],
    [
      'the wrong length',
      'AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg',
      /holds 31 bytes; an Ed25519 seed is 32 bytes/,
    ],
  ])('a key file with %s is refused without echoing it', (_name, content, message) => {
    const keyFile = file('bad.key', `${content}\n`);
    const r = rotor(['manifest', 'sign', m0, '--key', keyFile]);
    expectUsageError(r, message);
    expect(r.stderr).not.toContain(content);
  });
});

describe('rotor revocation sign / crl verify (CLI)', () => {
  it('revocation sign prints the exact SDK line', () => {
    const want = JSON.parse(shared.revocations[1]!.jsonl_line);
    const r = rotor([
      'revocation',
      'sign',
      '--manifest-id',
      want.manifest_id,
      '--reason',
      want.reason,
      '--revoked-by',
      want.revoked_by,
      '--key',
      seedFile,
      '--revoked-at',
      want.revoked_at,
    ]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${shared.revocations[1]!.jsonl_line}\n`);
  });

  it('crl verify lists accepted ids and rejected lines; exit 1 when any line is rejected', () => {
    const crl = file('crl2.jsonl', shared.crl.jsonl);
    const r = rotor(['crl', 'verify', crl, '--public-key', pub]);
    expect(r.code).toBe(1);
    const out = JSON.parse(r.stdout);
    expect(out.accepted).toEqual(shared.crl.accepted_manifest_ids);
    expect(out.rejected.map((x: { line: number }) => x.line)).toEqual([4, 5, 6]);
    const clean = file('crl3.jsonl', `${shared.revocations.map((x) => x.jsonl_line).join('\n')}\n`);
    expect(rotor(['crl', 'verify', clean, '--public-key', pub]).code).toBe(0);
  });
});
