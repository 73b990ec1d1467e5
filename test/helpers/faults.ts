/**
 * Fault injection in the test's own Postgres database: a trigger that makes writes to one table
 * fail with a real Postgres error (SQLSTATE P0001), as a failing dependency would, until removed.
 * Rotor's code is not touched: the activity sees the error a broken database gives it.
 */
import type { Pool } from '../../src/store/db';

export async function failWrites(
  pool: Pool,
  table: string,
  opts: { when?: string; ops?: 'INSERT' | 'UPDATE' | 'INSERT OR UPDATE' } = {},
): Promise<() => Promise<void>> {
  const name = `rotor_test_fault_${table}`;
  await pool.query(
    `CREATE OR REPLACE FUNCTION ${name}() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN RAISE EXCEPTION 'injected fault: writes to % are failing', TG_TABLE_NAME; END $$`,
  );
  await pool.query(
    `CREATE TRIGGER ${name} BEFORE ${opts.ops ?? 'INSERT OR UPDATE'} ON ${table}
       FOR EACH ROW ${opts.when ? `WHEN (${opts.when})` : ''} EXECUTE FUNCTION ${name}()`,
  );
  let removed = false;
  return async () => {
    if (removed) return;
    removed = true;
    await pool.query(`DROP TRIGGER IF EXISTS ${name} ON ${table}`);
    await pool.query(`DROP FUNCTION IF EXISTS ${name}()`);
  };
}
