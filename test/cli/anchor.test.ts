/**
 * `rotor anchor`: root init/rotate/show over a database and software custody of this file's own,
 * and `rotor anchor verify` as an offline verifier: exit 0 only for a trusted anchor.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli/main';
import { signAnchorJws, softwareSigner, unverifiedAnchorPayload } from '../../src/manifest';
import { getKey } from '../../src/store/keys';
import { currentTrustAnchor, trustAnchorVersion } from '../../src/store/trust-anchors';
import { captureOutput, uniqueLabel } from '../custody/helpers';
import { createTestDatabase, type TestDatabase } from '../helpers/db';

async function rotor(...args: string[]) {
  const { result, text, stdout } = await captureOutput(() => runCli(args), { quiet: true });
  return { code: result, output: text, stdout };
}

describe('rotor anchor', () => {
  let db: TestDatabase;
  let dir: string;
  const saved = { ...process.env };

  beforeAll(async () => {
    db = await createTestDatabase();
    dir = mkdtempSync(join(tmpdir(), 'rotor-cli-anchor-'));
    process.env.DATABASE_URL = db.url;
    process.env.ROTOR_SOFTWARE_KEY_DIR = join(dir, 'keys');
    delete process.env.ROTOR_CUSTODIAN;
  });
  afterAll(async () => {
    process.env = saved;
    rmSync(dir, { recursive: true, force: true });
    await db?.drop();
  });

  it('key init makes the root and revocation keys; root show prints what verifiers pin; verify trusts it', async () => {
    const identity = uniqueLabel('anchored');
    const init = await rotor(
      'key',
      'init',
      '--identity',
      identity,
      '--root-keys',
      '3',
      '--root-threshold',
      '2',
    );
    expect(init.code).toBe(0);
    const out = JSON.parse(init.stdout);
    expect(out.anchor_root.threshold).toBe(2);
    expect(out.anchor_root.keys).toHaveLength(3);
    expect(init.output).toContain('verifiers pin: --root ');
    for (const k of out.anchor_root.keys) expect((await getKey(db.pool, k.kid))!.role).toBe('root');
    expect((await getKey(db.pool, out.revocation_key.key_id))!.role).toBe('revocation');

    const show = await rotor('anchor', 'root', 'show', '--identity', identity);
    expect(show.code).toBe(0);
    const root = JSON.parse(show.stdout);
    expect(root).toMatchObject({ identity, root_version: 1, threshold: 2 });
    expect(root.keys.map((k: { kid: string }) => k.kid)).toEqual(
      out.anchor_root.keys.map((k: { kid: string }) => k.kid),
    );

    const anchor = (await currentTrustAnchor(db.pool, identity))!;
    const file = join(dir, 'trust-anchor.jws');
    writeFileSync(file, anchor.jws!);
    const pins = root.keys.flatMap((k: { public_key: string }) => ['--root', k.public_key]);
    const ok = await rotor('anchor', 'verify', file, ...pins, '--threshold', '2', '--identity', identity);
    expect(ok.code).toBe(0);
    const verdict = JSON.parse(ok.stdout);
    expect(verdict).toMatchObject({ trusted: true, identity, version: 1, sha256: anchor.jwsSha256 });
    expect(verdict.signed_by).toHaveLength(3);

    // Refusals, each exit 1 with one line.
    const expired = await rotor('anchor', 'verify', file, ...pins, '--now', '2099-01-01T00:00:00Z');
    expect(expired.code).toBe(1);
    expect(expired.output).toMatch(/^rotor: .*expired at .*\n$/);
    const rollback = await rotor('anchor', 'verify', file, ...pins, '--min-version', '2');
    expect(rollback.code).toBe(1);
    expect(rollback.output).toContain('version 1 is lower than 2: rollback refused');
    const stranger = softwareSigner(new Uint8Array(32).fill(77));
    const strangerPin = Buffer.from(stranger.publicKey).toString('base64url');
    const unknown = await rotor('anchor', 'verify', file, '--root', strangerPin);
    expect(unknown.code).toBe(1);
    expect(unknown.output).toContain('unknown signer');
    // Only one of the three root keys signs: below the threshold of 2.
    const payload = Buffer.from(JSON.stringify(unverifiedAnchorPayload(anchor.jws!)));
    const jws = JSON.parse(anchor.jws!);
    const one = { payload: jws.payload, signatures: [jws.signatures[0]] };
    writeFileSync(join(dir, 'one.jws'), JSON.stringify(one));
    const below = await rotor('anchor', 'verify', join(dir, 'one.jws'), ...pins, '--threshold', '2');
    expect(below.code).toBe(1);
    expect(below.output).toContain('below threshold: 1 of the pinned root keys signed, 2 required');
    writeFileSync(join(dir, 'plain.json'), anchor.text);
    const unsigned = await rotor('anchor', 'verify', join(dir, 'plain.json'), ...pins);
    expect(unsigned.code).toBe(1);
    expect(unsigned.output).toContain('unsigned trust anchor: refused');
    writeFileSync(join(dir, 'stranger.jws'), await signAnchorJws(payload, [stranger]));
    const foreign = await rotor('anchor', 'verify', join(dir, 'stranger.jws'), ...pins);
    expect(foreign.code).toBe(1);
    expect(foreign.output).toContain('unknown signer');
  });

  it('root rotate: the new anchor verifies under the old pins and then under the new ones', async () => {
    const identity = uniqueLabel('rerooted');
    expect((await rotor('key', 'init', '--identity', identity)).code).toBe(0);
    const before = JSON.parse((await rotor('anchor', 'root', 'show', '--identity', identity)).stdout);
    const again = await rotor('anchor', 'root', 'init', '--identity', identity);
    expect(again.code).toBe(1);
    expect(again.output).toContain('already has anchor root set 1: use rotor anchor root rotate');

    const rotated = await rotor(
      'anchor',
      'root',
      'rotate',
      '--identity',
      identity,
      '--keys',
      '2',
      '--threshold',
      '2',
    );
    expect(rotated.code).toBe(0);
    const after = JSON.parse(rotated.stdout);
    expect(after.root_version).toBe(2);
    const v2 = (await trustAnchorVersion(db.pool, identity, 2))!;
    expect(v2.rootVersion).toBe(2);
    const file = join(dir, `${identity}.jws`);
    writeFileSync(file, v2.jws!);
    const oldPins = before.keys.flatMap((k: { public_key: string }) => ['--root', k.public_key]);
    const newPins = after.keys.flatMap((k: { public_key: string }) => ['--root', k.public_key]);
    expect((await rotor('anchor', 'verify', file, ...oldPins)).code).toBe(0);
    expect((await rotor('anchor', 'verify', file, ...newPins, '--threshold', '2')).code).toBe(0);
    for (const k of before.keys) expect((await getKey(db.pool, k.kid))!.state).toBe('retired');

    // Renewal re-signs with the new set only; the old pins no longer verify it.
    const renewed = await rotor('anchor', 'renew', '--identity', identity, '--within', '999999999');
    expect(renewed.code).toBe(0);
    expect(JSON.parse(renewed.stdout)).toMatchObject({ version: 3, published: true });
    writeFileSync(file, (await currentTrustAnchor(db.pool, identity))!.jws!);
    expect((await rotor('anchor', 'verify', file, ...newPins, '--threshold', '2')).code).toBe(0);
    expect((await rotor('anchor', 'verify', file, ...oldPins)).code).toBe(1);
    const notDue = await rotor('anchor', 'renew', '--identity', identity, '--within', '60');
    expect(JSON.parse(notDue.stdout)).toMatchObject({ version: 3, published: false });
  });
});
