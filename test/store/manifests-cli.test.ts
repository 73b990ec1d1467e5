import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db';
import { sdkVectors } from './fixtures';

const run = promisify(execFile);
const ROTOR = fileURLToPath(new URL('../../bin/rotor-dev.mjs', import.meta.url));

let db: TestDatabase;
let dir: string;
beforeAll(async () => {
  db = await createTestDatabase();
  dir = await mkdtemp(join(tmpdir(), 'rotor-import-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
  await db?.drop();
});

async function rotor(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [ROTOR, ...args], {
      env: { ...process.env, DATABASE_URL: db.url },
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
