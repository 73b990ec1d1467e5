/**
 * A throwaway Postgres for a rotor stack (the demo, the benchmarks): an embedded PostgreSQL when no
 * server is given (DATABASE_URL unset), else a fresh database of its own on that server. Either is
 * removed at the end; nothing that was there before is read or written.
 */
import { randomBytes } from 'node:crypto';
import { startEmbeddedPostgres } from '../embedded/postgres';
import { EnvironmentError, errorMessage } from '../errors';
import { connect, redactUrl } from '../store/db';

export interface ThrowawayDatabase {
  url: string;
  /** `embedded` (a throwaway server) or `server` (a throwaway database on DATABASE_URL's server). */
  kind: 'embedded' | 'server';
  /** The database's name. */
  name: string;
  /** For people: where it is, without a password. */
  where: string;
  /** Stops the embedded server, or drops the database. Call after every pool on it has ended. */
  remove(): Promise<void>;
}

export async function openThrowawayDatabase(
  serverUrl: string | undefined,
  prefix = 'rotor_demo',
): Promise<ThrowawayDatabase> {
  if (!serverUrl) {
    const server = await startEmbeddedPostgres();
    const host = new URL(server.url).host;
    return {
      url: server.url,
      kind: 'embedded',
      name: 'postgres',
      where: `embedded PostgreSQL on ${host} (DATABASE_URL unset)`,
      remove: () => server.stop(),
    };
  }
  const name = `${prefix}_${randomBytes(5).toString('hex')}`;
  const admin = await connect(serverUrl, 1);
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } catch (err) {
    throw new EnvironmentError(
      `cannot create a throwaway database on ${redactUrl(serverUrl)} (${errorMessage(err)}): grant CREATEDB, or unset DATABASE_URL to use an embedded PostgreSQL`,
      'ENV_DEMO_DATABASE',
    );
  } finally {
    await admin.end();
  }
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    kind: 'server',
    name,
    where: `database ${name} on ${redactUrl(serverUrl)} (dropped at the end)`,
    async remove() {
      const a = await connect(serverUrl, 1);
      try {
        await a.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await a.end();
      }
    },
  };
}
