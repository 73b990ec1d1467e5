/**
 * One pg.Pool per process, created once and passed in to every store.
 * Connection failures become one-line EnvironmentErrors naming the fix.
 */
import pg from 'pg';
import { EnvironmentError, errorMessage } from '../errors';
import { atomically } from './queryable';

export type Pool = pg.Pool;
export type PoolClient = pg.PoolClient;

/** The URL with any password removed, for messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparseable DATABASE_URL)';
  }
}

export interface PoolOptions {
  /**
   * Postgres ends a session left idle inside a transaction this long (idle_in_transaction_session_timeout),
   * releasing its locks. Unset: the server's setting (off by default).
   */
  idleInTransactionSeconds?: number;
}

export function createPool(url: string, max = 10, options: PoolOptions = {}): Pool {
  const pool = new pg.Pool({
    connectionString: url,
    max,
    connectionTimeoutMillis: 10_000,
    ...(options.idleInTransactionSeconds
      ? { options: `-c idle_in_transaction_session_timeout=${options.idleInTransactionSeconds * 1000}` }
      : {}),
  });
  // An idle client losing its server must not crash the process; the next query reports it.
  pool.on('error', () => {});
  // The pool listens for errors only on the clients it holds idle, and drops that listener when
  // it hands a client out. A checked-out client whose server ends it between two queries (57P01
  // from pg_terminate_backend, a failover) then emits 'error' with no listener, which is an
  // uncaught exception that ends a worker. The holder's next query fails on its own, and release
  // drops the dead client (test/store/terminated-connection.test.ts).
  pool.on('connect', (client) => {
    client.on('error', () => {});
  });
  return pool;
}

/** Opens a pool and proves it reaches the server, or throws a one-line EnvironmentError. */
export async function connect(url: string, max = 10, options: PoolOptions = {}): Promise<Pool> {
  const pool = createPool(url, max, options);
  try {
    await pool.query('SELECT 1');
  } catch (err) {
    // Closing a pool that never connected; the connection error is what is reported.
    await pool.end().catch(() => {});
    throw new EnvironmentError(
      `cannot reach Postgres at ${redactUrl(url)} (${errorMessage(err)}): start it or set DATABASE_URL`,
      'ENV_DATABASE_UNREACHABLE',
    );
  }
  return pool;
}

/** Opens a pool on `url` (DATABASE_URL, src/config.ts) for one command's work and always closes it. */
export async function withPool<T>(url: string, fn: (pool: Pool) => Promise<T>): Promise<T> {
  const pool = await connect(url);
  try {
    return await fn(pool);
  } finally {
    await pool.end();
  }
}

/** Runs `fn` in one transaction on one client: COMMIT on success, ROLLBACK on any error. */
export function inTransaction<T>(pool: Pool, fn: (client: PoolClient) => Promise<T>): Promise<T> {
  return atomically(pool, fn);
}
