/**
 * README's `jose` command (section "Signed trust anchors and the revocation authority") run as
 * written: the block is read from README.md, only its two placeholders are filled in (the server
 * and a root key), and bash runs it against a `rotor serve` process over Postgres, in a folder
 * where `jose` resolves (the devDependency). A root rotation's anchor, signed by the old and the
 * new root set, is checked too; a key that signed nothing makes the command fail.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rotateAnchorRoot } from '../../src/activities/anchor-root';
import { initIdentity } from '../../src/activities/identity';
import { openSoftwareCustodian, type SoftwareCustodian } from '../../src/custody';
import { b64urlEncode, softwareSigner } from '../../src/manifest';
import { createTestDatabase, type TestDatabase } from '../helpers/db';
import { type RotorServe, startRotorServe } from '../helpers/rotor-serve';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const IDENTITY = 'jose-readme';
const run = promisify(execFile);

/** The ```sh block that follows README's "Any JOSE library verifies the signed anchor" paragraph. */
function readmeJoseBlock(): string {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const at = readme.indexOf('Any JOSE library verifies the signed anchor');
  expect(at, 'README.md has the jose paragraph').toBeGreaterThan(0);
  const block = /```sh\n([\s\S]*?)```/.exec(readme.slice(at));
  expect(block, 'a ```sh block follows it').not.toBeNull();
  return block![1]!;
}

/** The block with its placeholders filled in: each must appear exactly once. */
function filledIn(block: string, baseUrl: string, rootB64url: string): string {
  const fill = (text: string, placeholder: string, value: string) => {
    expect(text.split(placeholder), `README block names ${placeholder} once`).toHaveLength(2);
    return text.replace(placeholder, value);
  };
  return fill(fill(block, 'https://rotor.example', baseUrl), '<ROOT_B64URL>', rootB64url);
}

describe("README's jose one-liner against rotor serve", () => {
  let db: TestDatabase;
  let serve: RotorServe;
  let keyDir: string;
  let work: string;
  let custodian: SoftwareCustodian;

  beforeAll(async () => {
    db = await createTestDatabase();
    keyDir = mkdtempSync(join(tmpdir(), 'rotor-jose-keys-'));
    custodian = await openSoftwareCustodian({ dir: keyDir });
    // A folder of its own, as a verifier author's: jose resolves from its node_modules.
    work = mkdtempSync(join(tmpdir(), 'rotor-jose-'));
    symlinkSync(join(ROOT, 'node_modules'), join(work, 'node_modules'));
    serve = await startRotorServe(db.url, { ROTOR_IDENTITY: IDENTITY, ROTOR_LOG_LEVEL: 'warn' });
  });
  afterAll(async () => {
    await serve?.stop();
    await custodian?.close();
    await db?.drop();
    for (const d of [keyDir, work]) if (d) rmSync(d, { recursive: true, force: true });
  });

  const runBlock = (rootB64url: string) =>
    run('bash', ['-euo', 'pipefail', '-c', filledIn(readmeJoseBlock(), serve.baseUrl, rootB64url)], {
      cwd: work,
      timeout: 30_000,
    });

  /** Until rotor serve's in-memory anchor (revalidated every 100 ms) is `version`. */
  async function servedVersion(version: number): Promise<void> {
    for (let i = 0; i < 100; i++) {
      const res = await fetch(`${serve.baseUrl}/.well-known/agent-manifest/trust-anchor`);
      if (res.ok && ((await res.json()) as { version: number }).version === version) return;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error(`rotor serve never served anchor version ${version}`);
  }

  it('prints the root kid and the version of the served anchor, and fails for a key that did not sign', async () => {
    const init = await initIdentity(db.pool, custodian, IDENTITY, 'jose-key');
    await servedVersion(1);
    const root = init.rootKeys[0]!;
    const { stdout } = await runBlock(b64urlEncode(root.publicKey));
    expect(stdout).toBe(`${root.keyId} 1\n`);

    const stranger = softwareSigner(new Uint8Array(32).fill(9));
    await expect(runBlock(b64urlEncode(stranger.publicKey))).rejects.toMatchObject({
      code: 1,
      stderr: expect.stringContaining('signature verification failed'),
    });
  });

  it("verifies a root rotation's anchor (signed by both sets) with the new root key and with the old", async () => {
    const before = (
      await db.pool.query("SELECT key_id FROM signing_keys WHERE role = 'root' AND identity = $1", [IDENTITY])
    ).rows.map((r) => r.key_id as string);
    const change = await rotateAnchorRoot(db.pool, custodian, IDENTITY, {
      count: 1,
      threshold: 1,
      lifetimeSeconds: 3600,
    });
    await servedVersion(change.anchor.version);
    const fresh = change.root.keys[0]!;
    expect((await runBlock(b64urlEncode(fresh.publicKey))).stdout).toBe(
      `${fresh.keyId} ${change.anchor.version}\n`,
    );
    const old = (await db.pool.query('SELECT public_key FROM signing_keys WHERE key_id = $1', [before[0]]))
      .rows[0].public_key as Buffer;
    expect((await runBlock(b64urlEncode(old))).stdout).toBe(`${before[0]} ${change.anchor.version}\n`);
  });
});
