/**
 * `rotor manifest reissue`: the rotation's decision and re-issue code, offline. Prints the twin
 * (exit 0) or refuses with exit 1 and one line naming the reason; bad usage is exit 2. Reads v0.1
 * JSON and v0.2 COSE envelopes; a v0.1 original's twin is v0.2 unless `--as same`, as in a rotation.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  b64urlEncode,
  convertV01ToV02,
  examineEnvelope,
  manifestSchemaProblems,
  parseJson,
  publicKeyFromSeed,
  signCoseRoot,
  softwareSigner,
  verifyCoseEnvelope,
  verifyManifest,
} from '../../src/manifest/index';
import { shared, testSigner, upstream, validSigned } from './vectors';

const ROTOR = join(import.meta.dirname, '../../bin/rotor-dev.mjs');
const dir = mkdtempSync(join(tmpdir(), 'rotor-reissue-cli-'));
const file = (name: string, content: string) => {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
};
function rotorBytes(args: string[]) {
  const r = spawnSync(process.execPath, [ROTOR, ...args], { maxBuffer: 64 * 1024 * 1024 });
  return { code: r.status, bytes: new Uint8Array(r.stdout), stderr: r.stderr.toString('utf8') };
}
function rotor(args: string[]) {
  const r = rotorBytes(args);
  return { code: r.code, stdout: Buffer.from(r.bytes).toString('utf8'), stderr: r.stderr };
}
/** Refused: exit 1, nothing on stdout, one line on stderr naming the reason. */
function expectRefused(r: ReturnType<typeof rotor>, reason: RegExp) {
  expect(r.code, r.stderr).toBe(1);
  expect(r.stdout).toBe('');
  expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
  expect(r.stderr.trimEnd()).toMatch(reason);
}

const oldPub = shared.key.public_b64url;
const newSeed = new Uint8Array(32).fill(21);
const newKey = file('new.key', `${b64urlEncode(newSeed)}\n`);
const newSigner = softwareSigner(newSeed);
const NOW = '2026-06-05T12:00:00Z';
const reissue = (f: string, extra: string[] = []) =>
  rotor(['manifest', 'reissue', f, '--key', newKey, '--trusted-key', oldPub, '--now', NOW, ...extra]);

describe('rotor manifest reissue', () => {
  it('prints the twin: new id, previous id, issued_at = --now, signed by --key, VALID and schema-valid', async () => {
    const original = await validSigned();
    const r = reissue(file('valid.json', original), ['--as', 'same']);
    expect(r.code, r.stderr).toBe(0);
    const twin = JSON.parse(r.stdout);
    expect(twin.previous_manifest_id).toBe(JSON.parse(original).manifest_id);
    expect(twin.issued_at).toBe(NOW);
    expect(twin.signature.key_id).toBe(newSigner.keyId);
    expect(manifestSchemaProblems(parseJson(r.stdout))).toEqual([]);
    const trustedKeys = new Map([[newSigner.keyId, publicKeyFromSeed(newSeed)]]);
    expect(verifyManifest(r.stdout, { trustedKeys, now: new Date(NOW) }).result).toBe('VALID');
    // -o writes the same twin to a file (a fresh id each time), stdout stays empty.
    const out = join(dir, 'twin.json');
    const o = reissue(file('valid2.json', original), ['--as', 'same', '-o', out]);
    expect(o.code).toBe(0);
    expect(o.stdout).toBe('');
    expect(JSON.parse(readFileSync(out, 'utf8')).previous_manifest_id).toBe(twin.previous_manifest_id);
  });

  it('re-issues a v0.1 original as a v0.2 COSE_Sign1 by default (upstream ended v0.1 issuance on 2026-11-30)', async () => {
    const original = await validSigned();
    const r = rotorBytes([
      'manifest',
      'reissue',
      file('to-v02.json', original),
      '--key',
      newKey,
      '--trusted-key',
      oldPub,
      '--now',
      NOW,
    ]);
    expect(r.code, r.stderr).toBe(0);
    const trustedKeys = new Map([[newSigner.keyId, publicKeyFromSeed(newSeed)]]);
    const verdict = verifyCoseEnvelope(r.bytes, { trustedKeys, now: new Date(NOW) });
    expect(verdict.result, JSON.stringify(verdict)).toBe('VALID');
    const payload = examineEnvelope(r.bytes).manifest;
    expect(payload.get('previous_manifest_id')).toBe(JSON.parse(original).manifest_id);
    expect(payload.get('issued_at')).toBe(NOW);
    expect(payload.get('version')).toBe('0.2');
  });

  it('re-issues a v0.2 envelope (binary or --hex): the twin verifies under --key; an altered one is refused', async () => {
    const { manifest } = convertV01ToV02(await validSigned());
    const original = (await signCoseRoot(manifest, testSigner)).envelope;
    const originalId = examineEnvelope(original).manifestId;
    const trustedKeys = new Map([[newSigner.keyId, publicKeyFromSeed(newSeed)]]);
    const bin = join(dir, 'original.cose');
    writeFileSync(bin, original);
    const r = rotorBytes([
      'manifest',
      'reissue',
      bin,
      '--key',
      newKey,
      '--trusted-key',
      oldPub,
      '--now',
      NOW,
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(verifyCoseEnvelope(r.bytes, { trustedKeys, now: new Date(NOW) }).result).toBe('VALID');
    expect(examineEnvelope(r.bytes).manifest.get('previous_manifest_id')).toBe(originalId);
    // --hex: hex in, hex out.
    const hexIn = file('original.hex', `${Buffer.from(original).toString('hex')}\n`);
    const h = reissue(hexIn, ['--hex']);
    expect(h.code, h.stderr).toBe(0);
    const twin = new Uint8Array(Buffer.from(h.stdout.trim(), 'hex'));
    expect(verifyCoseEnvelope(twin, { trustedKeys, now: new Date(NOW) }).result).toBe('VALID');
    // The last byte of the signature flipped: refused, nothing printed.
    const altered = Uint8Array.from(original);
    altered[altered.length - 1]! ^= 1;
    const bad = join(dir, 'altered.cose');
    writeFileSync(bad, altered);
    expectRefused(reissue(bad), /^rotor: not re-issued: .*altered\.cose: .*signature/);
    // --as names a version rotor issues, or it is bad usage.
    expect(reissue(bin, ['--as', '0.1']).code).toBe(2);
  });

  it('refuses a forged manifest: signature does not verify under <key_id>', async () => {
    const m = JSON.parse(await validSigned());
    m.signature.signature_value = Buffer.alloc(64, 1).toString('base64url');
    expectRefused(
      reissue(file('forged.json', JSON.stringify(m))),
      new RegExp(
        `^rotor: not re-issued: .*forged\\.json: signature does not verify under ${shared.key.key_id}`,
      ),
    );
  });

  it('refuses an expired manifest: expired at …', async () => {
    const text = await validSigned({ issued_at: '2026-01-01T00:00:00Z', expires_at: '2026-06-01T00:00:00Z' });
    expectRefused(reissue(file('expired.json', text)), /: expired at 2026-06-01T00:00:00Z$/);
  });

  it("refuses a manifest with under an hour left: expires within the SDK's 1-hour window …", async () => {
    const text = await validSigned({ issued_at: '2026-06-05T00:00:00Z', expires_at: '2026-06-05T12:30:00Z' });
    expectRefused(
      reissue(file('near.json', text)),
      /: expires within the SDK's 1-hour window \(expires_at 2026-06-05T12:30:00Z\)/,
    );
  });

  it('refuses a manifest signed by a key not among --trusted-key: unknown key …', async () => {
    const text = await validSigned();
    const other = b64urlEncode(publicKeyFromSeed(new Uint8Array(32).fill(22)));
    const r = rotor([
      'manifest',
      'reissue',
      file('unknown.json', text),
      '--key',
      newKey,
      '--trusted-key',
      other,
      '--now',
      NOW,
    ]);
    expectRefused(r, new RegExp(`: unknown key ${shared.key.key_id}: not among the --trusted-key keys$`));
  });

  it.each(shared.manifests.map((m, i) => [i, m] as const))(
    'shared vector %i: re-issued when schema-valid, else refused naming the failing field',
    (i, m) => {
      const r = reissue(file(`sdk-${i}.json`, m.signed_json));
      if (manifestSchemaProblems(parseJson(m.signed_json)).length === 0) expect(r.code, r.stderr).toBe(0);
      else expectRefused(r, /: schema: [\w.[\]"@-]+: /);
    },
  );

  it('AM-VEC-001 omits members the schema requires; AM-VEC-008 was altered after signing', () => {
    expectRefused(
      reissue(file('am-vec-001.json', JSON.stringify(upstream('AM-VEC-001').manifest))),
      /: schema: artifacts\./,
    );
    expectRefused(
      reissue(file('am-vec-008.json', JSON.stringify(upstream('AM-VEC-008').manifest))),
      /signature does not verify/,
    );
  });

  it('bad usage is exit 2: no --trusted-key, a key file that is not one', () => {
    const noTrust = rotor(['manifest', 'reissue', 'x.json', '--key', newKey]);
    expect(noTrust.code).toBe(2);
    const badKey = rotor([
      'manifest',
      'reissue',
      'x.json',
      '--key',
      file('bad.key', 'nope'),
      '--trusted-key',
      oldPub,
    ]);
    expect(badKey.code).toBe(2);
    expect(badKey.stderr).not.toContain('nope');
  });
});
