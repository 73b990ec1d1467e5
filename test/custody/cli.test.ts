import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { runCli } from '../../src/cli/main';
import { b64urlEncode } from '../../src/manifest/keys';
import { getKey } from '../../src/store/keys';
import { currentTrustAnchor } from '../../src/store/trust-anchors';
import { createTestDatabase, type TestDatabase } from '../helpers/db';
import { captureOutput, tokenEnv, uniqueLabel } from './helpers';

async function rotor(...args: string[]) {
  const { result, text, stdout } = await captureOutput(() => runCli(args), { quiet: true });
  return { code: result, output: text, stdout };
}

describe('rotor key', () => {
  let db: TestDatabase;
  let keyDir: string;
  const saved = { ...process.env };

  beforeAll(async () => {
    db = await createTestDatabase();
    keyDir = mkdtempSync(join(tmpdir(), 'rotor-cli-keys-'));
    process.env.DATABASE_URL = db.url;
    process.env.ROTOR_SOFTWARE_KEY_DIR = keyDir;
    delete process.env.ROTOR_CUSTODIAN;
  });
  afterAll(async () => {
    process.env = saved;
    rmSync(keyDir, { recursive: true, force: true });
    await db?.drop();
  });

  it('init makes the first key of an identity, active, in the default (software) custodian', async () => {
    const identity = uniqueLabel('cli');
    const { code, stdout, output } = await rotor('key', 'init', '--identity', identity);
    expect(code).toBe(0);
    const out = JSON.parse(stdout);
    expect(out).toMatchObject({ identity, state: 'active', custodian: 'software', algorithm: 'Ed25519' });
    expect(out.description).toMatchObject({ isHsm: false });
    expect(output).toContain(`key ${out.key_id} is now the active key of ${identity}`);
    const record = await getKey(db.pool, out.key_id);
    expect(b64urlEncode(record!.publicKey)).toBe(out.public_key);
    // The first trust anchor version names the key as active, from its activation on.
    const anchor = await currentTrustAnchor(db.pool, identity);
    expect(out.trust_anchor).toMatchObject({ version: 1, etag: anchor!.etag });
    expect(anchor!.document).toMatchObject({
      version: 1,
      active_key_id: `sha256:${out.key_id}`,
      keys: [{ key_id: `sha256:${out.key_id}`, algorithm: 'Ed25519', public_key: out.public_key }],
    });

    const again = await rotor('key', 'init', '--identity', identity);
    expect(again.code).toBe(1);
    expect(again.output).toBe(
      `rotor: identity ${identity} already has an active key ${out.key_id}: rotate it instead of running key init\n`,
    );
  });

  it('list, show and export-public read the registry', async () => {
    const identity = uniqueLabel('cli');
    const { stdout } = await rotor('key', 'init', '--identity', identity, '--custodian', 'software');
    const { key_id: keyId, public_key: publicKey } = JSON.parse(stdout);

    const list = await rotor('key', 'list', '--json', '--identity', identity);
    expect(JSON.parse(list.stdout)).toEqual([expect.objectContaining({ key_id: keyId, state: 'active' })]);
    const table = await rotor('key', 'list');
    expect(table.stdout.split('\n')[0]).toMatch(/^KEY_ID\s+IDENTITY\s+STATE\s+CUSTODIAN\s+CREATED$/);
    expect(table.stdout).toMatch(new RegExp(`${keyId}\\s+${identity}\\s+active\\s+software`));

    const show = await rotor('key', 'show', `sha256:${keyId}`);
    expect(show.code).toBe(0);
    const shown = JSON.parse(show.stdout);
    expect(shown).toMatchObject({ key_id: keyId, history: [{ from: null, to: 'active' }] });
    expect(shown.custody).toMatchObject({ kind: 'software', isHsm: false, keyId });

    const exported = await rotor('key', 'export-public', keyId);
    expect(exported.stdout).toBe(`${publicKey}\n`);
  });

  it('names what was wrong with a bad key_id (exit 2) or an unknown one (exit 1)', async () => {
    const bad = await rotor('key', 'show', 'ABC');
    expect(bad.code).toBe(2);
    expect(bad.output).toContain(
      "'ABC' is not a key_id (64 lowercase hex digits, optionally prefixed sha256:)",
    );
    const unknown = 'ab'.repeat(32);
    const missing = await rotor('key', 'export-public', unknown);
    expect(missing.code).toBe(1);
    expect(missing.output).toBe(`rotor: key ${unknown} is not in the key registry\n`);
    const kind = await rotor('key', 'init', '--identity', 'x', '--custodian', 'vault');
    expect(kind.code).toBe(2);
    expect(kind.output).toContain("--custodian must be one of pkcs11, software, got 'vault'");
  });

  describe.skipIf(!inject('softhsm').available)('SoftHSM', () => {
    it('init --custodian pkcs11 generates on the token; show reports its HSM facts; the PIN is never printed', async () => {
      Object.assign(process.env, tokenEnv());
      const identity = uniqueLabel('hsm');
      const init = await rotor('key', 'init', '--identity', identity, '--custodian', 'pkcs11');
      expect(init.code).toBe(0);
      const out = JSON.parse(init.stdout);
      expect(out).toMatchObject({ custodian: 'pkcs11', handle: expect.stringMatching(/^pkcs11:token=/) });
      const show = await rotor('key', 'show', out.key_id);
      expect(JSON.parse(show.stdout).custody).toMatchObject({
        isHsm: true,
        generatedOnDevice: true,
        neverExtractable: true,
        token: { label: inject('softhsm').label },
      });
      for (const text of [init.output, show.output]) expect(text).not.toContain(inject('softhsm').pin!);
    });
  });
});
