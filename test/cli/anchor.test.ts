/**
 * `rotor anchor`: root init/rotate/show over a database and software custody of this file's own,
 * and `rotor anchor verify` as an offline verifier: exit 0 only for a trusted anchor, across root
 * rotations only through the root chain's links (`--chain`, README "Following root rotations").
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli/main';
import { signAnchorJws, softwareSigner, unverifiedAnchorPayload } from '../../src/manifest';
import { getKey } from '../../src/store/keys';
import { currentTrustAnchor, rootChainLink, trustAnchorVersion } from '../../src/store/trust-anchors';
import { captureOutput, uniqueLabel } from '../custody/helpers';
import { createTestDatabase, type TestDatabase } from '../helpers/db';

async function rotor(...args: string[]) {
  const { result, text, stdout } = await captureOutput(() => runCli(args), { quiet: true });
  return { code: result, output: text, stdout };
}

/** `rotor anchor root rotate` to a set of `keys` keys, `threshold` of which must sign. */
const rotateRoot = (identity: string, keys = 1, threshold = 1) =>
  rotor(
    'anchor',
    'root',
    'rotate',
    '--identity',
    identity,
    '--keys',
    String(keys),
    '--threshold',
    String(threshold),
  );

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

    const rotated = await rotateRoot(identity, 2, 2);
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

  it('verify --chain: pins of set 1 reach an anchor signed by set 3 through the two links, and only in order', async () => {
    const identity = uniqueLabel('chained');
    expect((await rotor('key', 'init', '--identity', identity)).code).toBe(0);
    const set1 = JSON.parse((await rotor('anchor', 'root', 'show', '--identity', identity)).stdout);
    const pins1 = set1.keys.flatMap((k: { public_key: string }) => ['--root', k.public_key]);
    expect((await rotateRoot(identity)).code).toBe(0);
    const rotated = await rotateRoot(identity, 2, 2);
    expect(rotated.code).toBe(0);
    expect(JSON.parse(rotated.stdout).root_version).toBe(3);
    expect((await rotor('anchor', 'renew', '--identity', identity, '--within', '999999999')).code).toBe(0);

    // The links exactly as rotor serve serves root/<n>.jws (rotor anchor show --root-set prints
    // them from the store), and the current anchor (set 3 alone).
    const write = (name: string, text: string) => {
      const path = join(dir, `${identity}-${name}`);
      writeFileSync(path, text);
      return path;
    };
    const shown = await rotor('anchor', 'show', '--identity', identity, '--root-set', '2');
    expect(shown.code, shown.output).toBe(0);
    expect(shown.stdout).toBe((await rootChainLink(db.pool, identity, 2))!.jws);
    const link2 = write('root-2.jws', shown.stdout);
    const link3 = write('root-3.jws', (await rootChainLink(db.pool, identity, 3))!.jws);
    const noSet = await rotor('anchor', 'show', '--identity', identity, '--root-set', '4');
    expect(noSet.code).toBe(1);
    expect(noSet.output).toBe(`rotor: identity ${identity} has no signed anchor introducing root set 4\n`);
    expect((await rotor('anchor', 'show', '--identity', identity, '--root-set', 'two')).code).toBe(2);
    const current = (await currentTrustAnchor(db.pool, identity))!;
    const file = write('trust-anchor.jws', current.jws!);

    const alone = await rotor('anchor', 'verify', file, ...pins1);
    expect(alone.code).toBe(1);
    expect(alone.output).toContain('unknown signer');
    const walked = await rotor('anchor', 'verify', file, ...pins1, '--chain', link2, '--chain', link3);
    expect(walked.code, walked.output).toBe(0);
    const verdict = JSON.parse(walked.stdout);
    expect(verdict).toMatchObject({
      trusted: true,
      identity,
      version: current.version,
      sha256: current.jwsSha256,
    });
    expect(verdict.root_chain.map((l: { root_version: number }) => l.root_version)).toEqual([2, 3]);
    expect(verdict.root.version).toBe(3);

    // Each refusal is exit 1 with one line naming the link or the anchor (a bad flag: exit 2).
    const refused = async (args: string[], message: string, code = 1) => {
      const r = await rotor('anchor', 'verify', ...args);
      expect(r.code, r.output).toBe(code);
      expect(r.output).toMatch(/^rotor: [^\n]*\n$/);
      expect(r.output).toContain(message);
    };
    // Out of order: link 3 is signed by sets 2 and 3, not by the pinned set 1.
    await refused(
      [file, ...pins1, '--chain', link3, '--chain', link2],
      `root chain link 2 (${link3}): signed by no pinned root key`,
    );
    // Stopping short: set 2 did not sign the current anchor.
    await refused([file, ...pins1, '--chain', link2], 'unknown signer');
    // The pinned set misnumbered: link 2 names set 2, where set 3 was expected.
    await refused(
      [file, ...pins1, '--root-version', '2', '--chain', link2],
      `root chain link 3 (${link2}): names root set 2, not 3: refused`,
    );
    // A link altered in transit: its payload now expires later.
    const jws = JSON.parse(readFileSync(link2, 'utf8'));
    const payload = JSON.parse(Buffer.from(jws.payload, 'base64url').toString('utf8'));
    payload.expires_at = '2099-01-01T00:00:00Z';
    jws.payload = Buffer.from(JSON.stringify(payload)).toString('base64url');
    const altered = write('root-2-altered.jws', JSON.stringify(jws));
    await refused(
      [file, ...pins1, '--chain', altered, '--chain', link3],
      'does not verify (the anchor was altered)',
    );
    // An anchor naming a set past the end of the chain given.
    await refused(
      [link3, ...pins1, '--chain', link2],
      `${link3}: names root set 3 but the root chain ends at 2: refused`,
    );
    // Another identity's chain, and the flags' own refusals (usage errors).
    await refused(
      [file, ...pins1, '--identity', 'someone-else', '--chain', link2, '--chain', link3],
      'is the anchor of identity',
    );
    await refused([file, ...pins1, '--chain', join(dir, 'missing.jws')], '--chain: ', 2);
    await refused([file, ...pins1, '--chain', '-'], '--chain: a link is read from a file, not stdin', 2);
  });
});
