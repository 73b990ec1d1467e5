import type { Pool } from '../../src/store/db';

export function databaseUrlFor(baseUrl: string, database: string): string {
  const u = new URL(baseUrl);
  u.pathname = `/${database}`;
  return u.toString();
}

/** Drops every database this run created (test files clone theirs from the run's template). */
export async function dropRunDatabases(admin: Pool, runId: string): Promise<void> {
  const { rows } = await admin.query<{ datname: string }>(
    "SELECT datname FROM pg_database WHERE datname LIKE 'rotor\\_test\\_' || $1 || '%'",
    [runId],
  );
  for (const { datname } of rows) {
    await admin.query(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`);
  }
}
