/**
 * What a store function runs its SQL on: the pool (each statement its own transaction) or a client
 * the caller holds, possibly inside the caller's transaction, so an activity can make several
 * store calls atomic.
 */
import type { Pool, PoolClient } from './db';

export type Queryable = Pool | PoolClient;

function isClient(q: Queryable): q is PoolClient {
  return typeof (q as PoolClient).release === 'function';
}

let savepointSeq = 0;

/**
 * Runs `fn` atomically on one client. On the pool: its own transaction. On a client already in a
 * transaction: a savepoint inside it, so the caller's COMMIT decides and a failure here leaves
 * the caller's transaction usable. On a client in autocommit: its own transaction on that client.
 * Locks taken in `fn` (FOR UPDATE, advisory xact locks) therefore last until the outermost commit.
 */
export async function atomically<T>(q: Queryable, fn: (client: PoolClient) => Promise<T>): Promise<T> {
  if (!isClient(q)) {
    const client = await q.connect();
    try {
      return await ownTransaction(client, fn);
    } finally {
      client.release();
    }
  }
  const savepoint = `rotor_sp_${++savepointSeq}`;
  try {
    await q.query(`SAVEPOINT ${savepoint}`);
  } catch (err) {
    // 25P01 no_active_sql_transaction: the client is in autocommit mode.
    if ((err as { code?: string }).code === '25P01') return ownTransaction(q, fn);
    throw err;
  }
  try {
    const result = await fn(q);
    await q.query(`RELEASE SAVEPOINT ${savepoint}`);
    return result;
  } catch (err) {
    // A failed rollback leaves the transaction aborted, which the caller sees; the original error is rethrown.
    await q.query(`ROLLBACK TO SAVEPOINT ${savepoint}`).catch(() => {});
    throw err;
  }
}

/** BEGIN … COMMIT on a client in autocommit mode; ROLLBACK on any error. */
export async function ownTransaction<T>(
  client: PoolClient,
  fn: (client: PoolClient) => Promise<T>,
): Promise<T> {
  await client.query('BEGIN');
  try {
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    // A failed ROLLBACK leaves nothing committed; the original error is what the caller needs.
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  }
}

/** True when `err` is a Postgres unique_violation (SQLSTATE 23505). */
export function isUniqueViolation(err: unknown): boolean {
  return (err as { code?: string } | null)?.code === '23505';
}
