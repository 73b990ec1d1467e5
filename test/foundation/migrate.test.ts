import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadMigrations, migrate } from '../../src/store/migrate';
import { createTestDatabase, type TestDatabase } from '../helpers/db';

describe('migration runner (real Postgres)', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db.drop();
  });

  it("the run's template carries every project migration, recorded in order", async () => {
    const { rows } = await db.pool.query<{ version: number }>(
      'SELECT version FROM schema_migrations ORDER BY version',
    );
    expect(rows.map((r) => r.version)).toEqual(loadMigrations().map((m) => m.version));
    const again = await migrate(db.pool);
    expect(again.applied).toEqual([]);
  });

  it('applies files in order, one transaction each, and a failing one leaves nothing of itself', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rotor-mig-'));
    writeFileSync(join(dir, '900_first.sql'), 'CREATE TABLE mig_probe_a (id int);');
    writeFileSync(join(dir, '901_second.sql'), 'INSERT INTO mig_probe_a VALUES (1);');
    writeFileSync(
      join(dir, '902_broken.sql'),
      'CREATE TABLE mig_probe_b (id int); SELECT no_such_function();',
    );
    await expect(migrate(db.pool, dir)).rejects.toThrow(/migration 902_broken failed: .*no_such_function/);
    const { rows } = await db.pool.query<{ version: number }>(
      'SELECT version FROM schema_migrations WHERE version >= 900 ORDER BY version',
    );
    expect(rows.map((r) => r.version)).toEqual([900, 901]);
    const probeB = await db.pool.query("SELECT to_regclass('mig_probe_b') AS t");
    expect(probeB.rows[0].t).toBeNull();
    const count = await db.pool.query('SELECT count(*)::int AS n FROM mig_probe_a');
    expect(count.rows[0].n).toBe(1);
  });

  it('refuses an applied migration whose text changed', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rotor-mig-'));
    writeFileSync(join(dir, '950_once.sql'), 'CREATE TABLE mig_probe_c (id int);');
    expect((await migrate(db.pool, dir)).applied).toEqual(['950_once']);
    writeFileSync(join(dir, '950_once.sql'), 'CREATE TABLE mig_probe_c (id bigint);');
    await expect(migrate(db.pool, dir)).rejects.toThrow(/950_once was changed after it was applied/);
  });

  it('refuses badly named files', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rotor-mig-'));
    writeFileSync(join(dir, 'create_things.sql'), 'SELECT 1;');
    expect(() => loadMigrations(dir)).toThrow(/create_things.sql is not named NNN_name.sql/);
  });
});
