/**
 * A database of this test file's own, cloned from the run's migrated template, dropped afterwards.
 */
import { randomBytes } from 'node:crypto';
import { inject } from 'vitest';
import { connect, type Pool } from '../../src/store/db';
import { databaseUrlFor } from './db-admin';

export interface TestDatabase {
  pool: Pool;
  url: string;
  name: string;
  drop(): Promise<void>;
}

export async function createTestDatabase(): Promise<TestDatabase> {
  const adminUrl = inject('adminDatabaseUrl');
  const name = `rotor_test_${inject('runId')}_${randomBytes(4).toString('hex')}`;
  const admin = await connect(adminUrl, 1);
  try {
    // Two clones of one template at the same moment can collide; a retry settles it.
    for (let attempt = 0; ; attempt++) {
      try {
        await admin.query(`CREATE DATABASE ${name} TEMPLATE ${inject('templateDatabase')}`);
        break;
      } catch (err) {
        if (attempt >= 10 || !/being accessed by other users/.test(String(err))) throw err;
        await new Promise((r) => setTimeout(r, 200 + attempt * 100));
      }
    }
  } finally {
    await admin.end();
  }
  const url = databaseUrlFor(adminUrl, name);
  const pool = await connect(url, 10);
  return {
    pool,
    url,
    name,
    async drop() {
      await pool.end();
      const a = await connect(adminUrl, 1);
      try {
        await a.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await a.end();
      }
    },
  };
}
