/**
 * Versioned plain-SQL migrations: files named `NNN_name.sql` applied in order, each in its own
 * transaction, recorded in `schema_migrations`. An applied file whose text changed is an error:
 * history is not rewritten under a running database.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RotorError } from '../errors';
import type { Pool } from './db';
import { ownTransaction } from './queryable';

export const MIGRATIONS_DIR = fileURLToPath(new URL('./migrations', import.meta.url));

export interface Migration {
  version: number;
  name: string;
  sql: string;
  checksum: string;
}

const FILE_PATTERN = /^(\d{3,})_([a-z0-9_]+)\.sql$/;

export function loadMigrations(dir: string = MIGRATIONS_DIR): Migration[] {
  const migrations: Migration[] = [];
  for (const file of readdirSync(dir).sort()) {
    if (!file.endsWith('.sql')) continue;
    const m = FILE_PATTERN.exec(file);
    if (!m) throw new RotorError(`migration file ${file} is not named NNN_name.sql`, 'MIGRATION_NAME');
    const sql = readFileSync(join(dir, file), 'utf8');
    migrations.push({
      version: Number(m[1]),
      name: m[2]!,
      sql,
      checksum: createHash('sha256').update(sql).digest('hex'),
    });
  }
  for (let i = 1; i < migrations.length; i++) {
    if (migrations[i]!.version === migrations[i - 1]!.version) {
      throw new RotorError(`two migrations share version ${migrations[i]!.version}`, 'MIGRATION_DUPLICATE');
    }
  }
  return migrations;
}

export interface MigrateResult {
  applied: string[];
  alreadyApplied: number;
}

// One advisory lock id for rotor's migrations, so two processes migrating at once take turns.
const MIGRATION_LOCK = 0x726f746f72;

export async function migrate(pool: Pool, dir: string = MIGRATIONS_DIR): Promise<MigrateResult> {
  const migrations = loadMigrations(dir);
  const client = await pool.connect();
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
    await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version integer PRIMARY KEY,
      name text NOT NULL,
      checksum text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`);
    const { rows } = await client.query<{ version: number; name: string; checksum: string }>(
      'SELECT version, name, checksum FROM schema_migrations',
    );
    const done = new Map(rows.map((r) => [r.version, r]));
    const applied: string[] = [];
    for (const m of migrations) {
      const prior = done.get(m.version);
      if (prior) {
        if (prior.checksum !== m.checksum) {
          throw new RotorError(
            `migration ${m.version}_${m.name} was changed after it was applied; add a new migration instead`,
            'MIGRATION_CHANGED',
          );
        }
        continue;
      }
      await ownTransaction(client, async () => {
        await client.query(m.sql);
        await client.query('INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)', [
          m.version,
          m.name,
          m.checksum,
        ]);
      }).catch((err: unknown) => {
        throw new RotorError(
          `migration ${m.version}_${m.name} failed: ${err instanceof Error ? err.message : String(err)}`,
          'MIGRATION_FAILED',
        );
      });
      applied.push(`${m.version}_${m.name}`);
    }
    return { applied, alreadyApplied: migrations.length - applied.length };
  } finally {
    // Postgres drops a session-level advisory lock when the connection ends: a failed unlock is harmless.
    await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]).catch(() => {});
    client.release();
  }
}
