import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { b64urlDecode, softwareSigner } from '../../src/manifest';
import { registerKey } from '../../src/store/keys';
import { pageManifests } from '../../src/store/manifests';
import { syntheticManifests } from '../../src/synthetic/manifests';
import { createTestDatabase, type TestDatabase } from '../helpers/db';
import { sdkVectors } from './fixtures';

const run = promisify(execFile);
const ROTOR = fileURLToPath(new URL('../../bin/rotor-dev.mjs', import.meta.url));

let db: TestDatabase;
let dir: string;
beforeAll(async () => {
  db = await createTestDatabase();
  dir = await mkdtemp(join(tmpdir(), 'rotor-import-'));
  // The import verifies each manifest under the registry's key for its key_id: the SDK's key is one.
  await registerKey(db.pool, {
    keyId: sdkVectors.key.key_id,
    identity: 'sdk',
    publicKey: b64urlDecode(sdkVectors.key.public_b64url),
    custodian: 'software',
    handle: 'sdk-vector-key',
    state: 'active',
  });
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
  await db?.drop();
});

async function rotor(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [ROTOR, ...args], {
      env: { ...process.env, DATABASE_URL: db.url, ROTOR_SOFTWARE_KEY_DIR: join(dir, 'keys') },
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('rotor manifests import / export', () => {
  it('reports each bad line by file and line, imports the rest, and exports the text exactly', async () => {
    const [a, b, c] = sdkVectors.manifests.map((m) => m.signed_json);
    const file = join(dir, 'batch.jsonl');
    await writeFile(file, `${a}\n{"manifest_id": "broken"\n\n${b}\r\n${a}\n{"agent_id": "x"}\n`);
    const doc = join(dir, 'one.json');
    await writeFile(doc, `  ${c}\n`);

    const first = await rotor('manifests', 'import', dir);
    expect(first.code).toBe(1);
    expect(JSON.parse(first.stdout)).toEqual({ imported: 3, duplicates: 1, rejected: 2 });
    const errors = first.stderr.trim().split('\n');
    expect(errors).toHaveLength(2);
    expect(errors[0]).toMatch(new RegExp(`^rotor: rejected ${file}:2: `));
    expect(errors[1]).toMatch(new RegExp(`^rotor: rejected ${file}:6: field manifest_id`));

    const again = await rotor('manifests', 'import', file);
    expect(JSON.parse(again.stdout)).toEqual({ imported: 0, duplicates: 3, rejected: 2 });

    const exported = await rotor('manifests', 'export');
    expect(exported.code).toBe(0);
    const byId = (t: string) => JSON.parse(t).manifest_id as string;
    expect(exported.stdout).toBe(`${[a!, b!, c!].sort((x, y) => (byId(x) < byId(y) ? -1 : 1)).join('\n')}\n`);

    const stats = await rotor('manifests', 'stats');
    expect(JSON.parse(stats.stdout)).toEqual({
      total: 3,
      keys: [
        { key_id: sdkVectors.key.key_id, active: 3, superseded: 0, revoked: 0, quarantined: 0, total: 3 },
      ],
    });
    const bad = await rotor('manifests', 'export', '--status', 'gone');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/status must be one of/);
  });

  it('verifies the audit chain from the command line', async () => {
    const result = await rotor('audit', 'verify');
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual({ ok: true, entries: 0, problems: [] });
  });
});

describe('rotor manifests import refuses what it cannot trust (issue 10, point 5)', () => {
  const stored = async (ids: string[]) =>
    (
      await db.pool.query<{ manifest_id: string; status: string }>(
        'SELECT manifest_id, status FROM manifests WHERE manifest_id = ANY($1::text[]) ORDER BY manifest_id',
        [ids],
      )
    ).rows;

  it('refuses each bad record with one line naming file, line and reason, and stores none of them', async () => {
    const outsider = softwareSigner(new Uint8Array(32).fill(3));
    const foreign: string[] = [];
    for await (const t of syntheticManifests(1, outsider, { seed: 31 })) foreign.push(t);
    const [good] = sdkVectors.manifests.map((m) => m.signed_json);
    const g = JSON.parse(good!) as Record<string, unknown>;
    const id = (suffix: string) => `0190b6e0-0000-7000-8000-${suffix.padStart(12, '0')}`;
    const withId = (text: string, newId: string) =>
      text.replace(/"manifest_id": ?"[^"]+"/, `"manifest_id": "${newId}"`);
    const tampered = withId(good!, id('1'));
    const duplicate = good!.replace(/^\{/, `{"agent_id": ${JSON.stringify(g.agent_id)}, `);
    const notUuid = withId(good!, 'not-a-uuid\\u001b[31m');
    const bom = `\uFEFF${good!}`;
    const lines = [
      Buffer.from(tampered),
      Buffer.from(foreign[0]!),
      Buffer.from(duplicate),
      Buffer.from(notUuid),
      Buffer.from(bom),
      Buffer.concat([
        Buffer.from(good!.slice(0, 40)),
        Buffer.from([0xff, 0xfe]),
        Buffer.from(good!.slice(40)),
      ]),
      Buffer.alloc(1024 * 1024 + 10, 0x20),
    ];
    const file = join(dir, 'bad.jsonl');
    await writeFile(file, Buffer.concat(lines.flatMap((l) => [l, Buffer.from('\n')])));
    const big = join(dir, 'big.json');
    await writeFile(big, Buffer.alloc(1024 * 1024 + 1, 0x20));

    const r = await rotor('manifests', 'import', file);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toEqual({ imported: 0, duplicates: 0, rejected: 7 });
    const errors = r.stderr.trim().split('\n');
    expect(errors).toHaveLength(7);
    const byLine = (n: number) => errors.find((e) => e.startsWith(`rotor: rejected ${file}:${n}: `)) ?? '';
    expect(byLine(1)).toMatch(/signature does not verify under [0-9a-f]{64}/);
    expect(byLine(2)).toMatch(new RegExp(`unknown key ${outsider.keyId}: not in rotor's key registry`));
    expect(byLine(3)).toMatch(/duplicate member name/);
    expect(byLine(4)).toMatch(/manifest_id "not-a-uuid\\u001b\[31m" is not a UUID$/);
    expect(byLine(4)).not.toContain('\u001b');
    expect(byLine(5)).toMatch(/starts with a byte-order mark \(U\+FEFF\)/);
    expect(byLine(6)).toMatch(/is not valid UTF-8$/);
    expect(byLine(7)).toMatch(/longer than 1048576 bytes: refused without reading it whole$/);
    const bigResult = await rotor('manifests', 'import', big);
    expect(bigResult.stderr.trim()).toBe(
      `rotor: rejected ${big}: is 1048577 bytes, more than 1048576: not read`,
    );
    expect(await stored([id('1'), JSON.parse(foreign[0]!).manifest_id])).toEqual([]);
  });

  it('--unverified stores a manifest it cannot verify as quarantined, which no rotation selects', async () => {
    const outsider = softwareSigner(new Uint8Array(32).fill(4));
    const texts: string[] = [];
    for await (const t of syntheticManifests(2, outsider, { seed: 41 })) texts.push(t);
    const file = join(dir, 'quarantine.jsonl');
    await writeFile(file, `${texts.join('\n')}\n`);
    const r = await rotor('manifests', 'import', '--unverified', file);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ imported: 2, duplicates: 0, rejected: 0 });
    const ids = texts.map((t) => JSON.parse(t).manifest_id as string);
    expect((await stored(ids)).map((row) => row.status)).toEqual(['quarantined', 'quarantined']);
    // What the re-sign and revoke steps page through: active (or superseded) manifests of the key.
    expect(await pageManifests(db.pool, { keyId: outsider.keyId, status: 'active', limit: 10 })).toEqual([]);
  });

  it('seed stores synthetic manifests signed by a registered key, over several batches, through the one import', async () => {
    const init = await rotor('key', 'init', '--identity', 'seeded', '--custodian', 'software');
    expect(init.code, init.stderr).toBe(0);
    const keyId = JSON.parse(init.stdout).key_id as string;
    // 601: two transactions of the streaming import (500 a batch).
    const r = await rotor('manifests', 'seed', '--count', '601', '--key-id', keyId, '--seed', '7');
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ key_id: keyId, imported: 601 });
    expect(r.stderr).toBe('');
    const stats = JSON.parse((await rotor('manifests', 'stats')).stdout) as {
      keys: Array<{ key_id: string; active: number }>;
    };
    expect(stats.keys.find((k) => k.key_id === keyId)?.active).toBe(601);
    const unknown = await rotor('manifests', 'seed', '--count', '1', '--key-id', 'f'.repeat(64));
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr.trim().split('\n')).toHaveLength(1);
  });
});
