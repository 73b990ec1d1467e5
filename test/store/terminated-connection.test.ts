/**
 * A connection terminated by the server (pg_terminate_backend, a failover, a proxy's restart)
 * while a caller holds it between two queries, as an activity does while it signs inside a
 * transaction: the process must live on (an 'error' event with no listener is an uncaught
 * exception, which ends a worker), the holder's next query fails with one error, and the pool
 * serves the next caller on a fresh connection.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { connect, inTransaction, type Pool } from '../../src/store/db';
import { createTestDatabase, type TestDatabase } from '../helpers/db';

describe('a pooled connection terminated by the server', () => {
  let db: TestDatabase;
  let admin: Pool;
  const uncaught: unknown[] = [];
  const record = (err: unknown) => uncaught.push(err);

  beforeAll(async () => {
    db = await createTestDatabase();
    admin = await connect(inject('adminDatabaseUrl'), 1);
  });
  afterAll(async () => {
    await admin?.end();
    await db?.drop();
  });
  beforeEach(() => {
    uncaught.length = 0;
    process.on('uncaughtException', record);
  });
  afterEach(() => {
    process.off('uncaughtException', record);
  });

  /** Resolves once the client's socket has closed, or after 5 s (a crash may never get that far). */
  function closed(client: { once(event: 'end', fn: () => void): unknown }): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, 5_000);
      client.once('end', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  async function terminate(pid: number): Promise<void> {
    const { rows } = await admin.query<{ ok: boolean }>('SELECT pg_terminate_backend($1) AS ok', [pid]);
    expect(rows[0]?.ok).toBe(true);
  }

  it('held between two queries of a transaction: no uncaught error, the next query fails, the pool goes on', async () => {
    let ended!: Promise<void>;
    const failure = await inTransaction(db.pool, async (client) => {
      ended = closed(client);
      const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      await terminate(rows[0]!.pid);
      // The server's 57P01 and the socket's close arrive while no query runs on this client.
      await ended;
      return client.query('SELECT 1').then(
        () => undefined,
        (err: unknown) => err,
      );
    }).catch((err: unknown) => err);
    expect(String(failure)).toMatch(/terminat|not queryable|Connection terminated/i);
    expect(uncaught.map(String)).toEqual([]);
    const { rows } = await db.pool.query<{ n: number }>('SELECT 1 AS n');
    expect(rows[0]?.n).toBe(1);
  });

  it('checked out and idle: no uncaught error, and the pool replaces it', async () => {
    const client = await db.pool.connect();
    const ended = closed(client);
    const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    await terminate(rows[0]!.pid);
    await ended;
    client.release();
    expect(uncaught.map(String)).toEqual([]);
    const again = await db.pool.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    expect(again.rows[0]?.pid).not.toBe(rows[0]!.pid);
  });
});
