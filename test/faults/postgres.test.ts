/**
 * Postgres failures mid-rotation, on the production-shape Temporal server: the worker's
 * connections terminated (pg_terminate_backend, as a failover or a proxy does) mid re-sign and mid
 * revoke, and its database unreachable for 20 s mid re-sign. The database is this file's own on
 * the machine's server: it is made unreachable with ALLOW_CONNECTIONS false, never by stopping the
 * shared server. Each rotation must end completed, on its own, with every manifest re-issued and
 * revoked exactly once and the audit chain intact.
 */
import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import { connect, type Pool } from '../../src/store/db';
import { countManifests } from '../../src/store/manifests';
import type { RotationStatus } from '../../src/workflows/rotation-api';
import { expectCleanRotation } from '../helpers/fault-checks';
import { createRotationEnv, type RotationEnv } from '../helpers/rotation-env';

const COUNT = 600;
const step = (line: string) => process.stderr.write(`[faults/postgres] ${line}\n`);

describe('Postgres failures mid-rotation (Temporal server on Postgres persistence)', () => {
  let env: RotationEnv;
  let admin: Pool;

  beforeEach(async () => {
    env = await createRotationEnv('software');
    admin = await connect(inject('adminDatabaseUrl'), 1);
  });
  afterEach(async () => {
    await admin.query(`ALTER DATABASE ${env.db.name} WITH ALLOW_CONNECTIONS true`).catch(() => {});
    await admin.end();
    await env.close();
  });

  /** Terminates every connection to the test's database: the worker's pool and the test's own. */
  async function terminateConnections(): Promise<number> {
    const { rows } = await admin.query<{ pid: number }>(
      `SELECT pg_terminate_backend(pid), pid FROM pg_stat_activity
        WHERE datname = $1 AND pid <> pg_backend_pid()`,
      [env.db.name],
    );
    return rows.length;
  }

  async function begin(identity: string) {
    const signer = await env.initIdentity(identity);
    await env.seed(identity, signer, COUNT);
    const handle = await env.start(identity, 'personnel', {
      minKeyAgeDays: 0,
      batchSize: 5,
      chunkSize: COUNT,
      heartbeatTimeoutSeconds: 5,
    });
    const { newKeyId } = await env.waitForStatus(
      handle,
      'the new key',
      (s) => s.newKeyId !== undefined,
      90_000,
    );
    return { handle, oldKeyId: signer.keyId, newKeyId: newKeyId! };
  }

  /** The result with no operator action; a rotation may pause on the way but must finish by itself. */
  async function endsOnItsOwn(handle: Awaited<ReturnType<typeof begin>>['handle'], timeoutMs: number) {
    const result = await Promise.race([
      handle.result() as Promise<RotationStatus>,
      new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error(`no result in ${timeoutMs} ms without an operator`)), timeoutMs),
      ),
    ]);
    return result;
  }

  it('pg_terminate_backend of the worker’s connections mid re-sign', async () => {
    const identity = 'pg-kill-resign';
    const r = await begin(identity);
    let partial = 0;
    const deadline = Date.now() + 120_000;
    while (partial === 0 && Date.now() < deadline) {
      partial = await countManifests(env.db.pool, { keyId: r.newKeyId });
    }
    let terminated = 0;
    for (let i = 0; i < 3; i++) {
      terminated += await terminateConnections();
      await new Promise((res) => setTimeout(res, 300));
    }
    step(`terminated ${terminated} connections at ${partial} twins`);
    expect(partial).toBeGreaterThan(0);
    expect(partial, 'the connections must die mid re-sign').toBeLessThan(COUNT);
    expect(terminated).toBeGreaterThan(0);
    const result = await endsOnItsOwn(r.handle, 240_000);
    expect(result.phase, result.outcome).toBe('completed');
    await expectCleanRotation(env, { identity, ...r, count: COUNT });
  }, 400_000);

  it('pg_terminate_backend of the worker’s connections mid revoke', async () => {
    const identity = 'pg-kill-revoke';
    const r = await begin(identity);
    await env.waitForPhase(r.handle, ['revoke'], 120_000);
    let terminated = 0;
    let sawPartial = false;
    const deadline = Date.now() + 60_000;
    for (;;) {
      const status = (await r.handle.query<RotationStatus>('status').catch(() => undefined)) as
        | RotationStatus
        | undefined;
      if (status?.phase !== 'revoke' || Date.now() > deadline) break;
      const done = await countManifests(env.db.pool, { keyId: r.oldKeyId, status: 'revoked' }).catch(() => 0);
      if (done > 0 && done < COUNT) sawPartial = true;
      terminated += await terminateConnections();
      await new Promise((res) => setTimeout(res, 200));
    }
    step(`terminated ${terminated} connections during revoke; partial seen: ${sawPartial}`);
    expect(terminated).toBeGreaterThan(0);
    const result = await endsOnItsOwn(r.handle, 240_000);
    expect(result.phase, result.outcome).toBe('completed');
    await expectCleanRotation(env, { identity, ...r, count: COUNT });
  }, 400_000);

  it('the database unreachable for 20 s mid re-sign', async () => {
    const identity = 'pg-down-resign';
    const r = await begin(identity);
    let partial = 0;
    const deadline = Date.now() + 120_000;
    while (partial === 0 && Date.now() < deadline) {
      partial = await countManifests(env.db.pool, { keyId: r.newKeyId });
    }
    await admin.query(`ALTER DATABASE ${env.db.name} WITH ALLOW_CONNECTIONS false`);
    await terminateConnections();
    step(`database down at ${partial} twins`);
    await new Promise((res) => setTimeout(res, 20_000));
    await admin.query(`ALTER DATABASE ${env.db.name} WITH ALLOW_CONNECTIONS true`);
    step('database back');
    expect(partial).toBeGreaterThan(0);
    const result = await endsOnItsOwn(r.handle, 300_000);
    expect(result.phase, result.outcome).toBe('completed');
    await expectCleanRotation(env, { identity, ...r, count: COUNT });
  }, 450_000);
});
