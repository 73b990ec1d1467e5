/**
 * Postgres failures mid-rotation, on the production-shape Temporal server: the worker's
 * connections terminated (pg_terminate_backend, as a failover or a proxy does) mid re-sign and mid
 * revoke, and its database unreachable for 20 s mid re-sign. The database is this file's own on
 * the machine's server: it is made unreachable with ALLOW_CONNECTIONS false, never by stopping the
 * shared server. The worker runs in a process of its own, as in production: a terminated
 * connection must not end it. Each rotation must end completed, with no operator action, every
 * manifest re-issued and revoked exactly once and the audit chain intact.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { connect, type Pool } from '../../src/store/db';
import { countManifests } from '../../src/store/manifests';
import type { RotationPolicy } from '../../src/workflows/policy';
import type { PauseKind, RotationStatus } from '../../src/workflows/rotation-api';
import { expectCleanRotation } from '../helpers/fault-checks';
import { createRotationEnv, type RotationEnv } from '../helpers/rotation-env';
import { killAllWorkerProcesses, startWorkerProcess, type WorkerProcess } from '../helpers/worker-process';

const COUNT = 400;
/**
 * Small batches and chunks so each step is many transactions and activity calls (a fault lands
 * mid-step); a short heartbeat timeout and step alert so a lost attempt is replaced, and a step
 * failing through the outage pauses as `retrying`, within seconds.
 */
const FAULT_POLICY: Partial<RotationPolicy> = {
  minKeyAgeDays: 0,
  batchSize: 5,
  chunkSize: 100,
  heartbeatTimeoutSeconds: 3,
  stepAlertSeconds: 8,
};
const step = (line: string) => process.stderr.write(`[faults/postgres] ${line}\n`);

describe('Postgres failures mid-rotation (Temporal server on Postgres persistence)', () => {
  let env: RotationEnv;
  let admin: Pool;
  let worker: WorkerProcess;

  beforeAll(async () => {
    expect(inject('temporalKind')).toBe('postgres');
    env = await createRotationEnv('software', { worker: false });
    admin = await connect(inject('adminDatabaseUrl'), 1);
    worker = await startWorkerProcess(env);
  });
  afterAll(async () => {
    await admin?.query(`ALTER DATABASE ${env.db.name} WITH ALLOW_CONNECTIONS true`).catch(() => {});
    await admin?.end();
    await killAllWorkerProcesses();
    await env?.close();
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

  /** Fails the test at once, with the worker's last lines, if the worker process is gone. */
  function expectWorkerAlive(): void {
    expect(
      { exitCode: worker.child.exitCode, signal: worker.child.signalCode },
      `the worker process died: ${worker.output().slice(-1500)}`,
    ).toEqual({ exitCode: null, signal: null });
  }

  async function begin(identity: string) {
    const signer = await env.initIdentity(identity);
    await env.seed(identity, signer, COUNT);
    const handle = await env.start(identity, 'personnel', FAULT_POLICY);
    const { newKeyId } = await env.waitForStatus(
      handle,
      'the new key',
      (s) => s.newKeyId !== undefined,
      90_000,
    );
    return { handle, oldKeyId: signer.keyId, newKeyId: newKeyId! };
  }

  /** Waits until some but not all twins are committed. */
  async function midResign(newKeyId: string): Promise<number> {
    const deadline = Date.now() + 120_000;
    for (;;) {
      const n = await countManifests(env.db.pool, { keyId: newKeyId }).catch(() => 0);
      if (n > 0) return n;
      if (Date.now() > deadline) throw new Error('re-sign did not start within 120 s');
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /**
   * The result with no operator action (a `retrying` pause clears by itself; any other pause
   * would wait for a person and fails the test), and every pause kind seen on the way.
   */
  async function endsOnItsOwn(handle: Awaited<ReturnType<typeof begin>>['handle'], timeoutMs: number) {
    const kinds = new Set<PauseKind>();
    const result = handle.result() as Promise<RotationStatus>;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const done = await Promise.race([
        result.then(() => true),
        new Promise((r) => setTimeout(() => r(false), 250)),
      ]);
      if (done) return { result: await result, kinds };
      expectWorkerAlive();
      const status = await handle.query<RotationStatus>('status').catch(() => undefined);
      if (status?.pause) {
        kinds.add(status.pause.kind);
        if (status.pause.kind !== 'retrying')
          throw new Error(`paused for an operator (${status.pause.kind}): ${status.pause.reason}`);
      }
      if (Date.now() > deadline)
        throw new Error(
          `no result in ${timeoutMs} ms without an operator: ${JSON.stringify(status?.blockers)}`,
        );
    }
  }

  it('pg_terminate_backend of the worker’s connections mid re-sign', async () => {
    const identity = 'pg-kill-resign';
    const r = await begin(identity);
    const partial = await midResign(r.newKeyId);
    let terminated = 0;
    // Repeatedly for a second and a half: some land mid-query, some between two queries of a batch.
    for (let i = 0; i < 15; i++) {
      terminated += await terminateConnections();
      await new Promise((res) => setTimeout(res, 100));
    }
    step(`terminated ${terminated} connections at ${partial} twins`);
    expect(partial, 'the connections must die mid re-sign').toBeLessThan(COUNT);
    expect(terminated).toBeGreaterThan(0);
    const { result } = await endsOnItsOwn(r.handle, 180_000);
    expect(result.phase, result.outcome).toBe('completed');
    expectWorkerAlive();
    await expectCleanRotation(env, { identity, ...r, count: COUNT });
  }, 300_000);

  it('pg_terminate_backend of the worker’s connections mid revoke', async () => {
    const identity = 'pg-kill-revoke';
    const r = await begin(identity);
    await env.waitForPhase(r.handle, ['revoke'], 120_000);
    let terminated = 0;
    let partial = false;
    const deadline = Date.now() + 2_000;
    for (;;) {
      const status = await r.handle.query<RotationStatus>('status').catch(() => undefined);
      // Two seconds of terminations: enough to cut several batches, short enough for CI.
      if ((status && status.phase !== 'revoke') || Date.now() > deadline) break;
      const done = await countManifests(env.db.pool, { keyId: r.oldKeyId, status: 'revoked' }).catch(() => 0);
      if (done > 0 && done < COUNT) partial = true;
      terminated += await terminateConnections();
      await new Promise((res) => setTimeout(res, 200));
    }
    step(`terminated ${terminated} connections during revoke; partial progress seen: ${partial}`);
    expect(terminated).toBeGreaterThan(0);
    const { result } = await endsOnItsOwn(r.handle, 180_000);
    expect(result.phase, result.outcome).toBe('completed');
    expectWorkerAlive();
    await expectCleanRotation(env, { identity, ...r, count: COUNT });
  }, 300_000);

  it('the database unreachable for 20 s mid re-sign: pauses as retrying, then completes by itself', async () => {
    const identity = 'pg-down-resign';
    const r = await begin(identity);
    const partial = await midResign(r.newKeyId);
    await admin.query(`ALTER DATABASE ${env.db.name} WITH ALLOW_CONNECTIONS false`);
    await terminateConnections();
    const downAt = Date.now();
    step(`database down at ${partial} twins`);
    expect(partial, 'the database must go down mid re-sign').toBeLessThan(COUNT);
    // Longer than the step alert: the step must pause as `retrying` while it keeps failing.
    const during = await env.waitForStatus(
      r.handle,
      'a retrying pause',
      (s) => s.pause?.kind === 'retrying',
      20_000,
    );
    expect(during.blockers.join(' ')).toMatch(/re-sign keeps failing/);
    await new Promise((res) => setTimeout(res, Math.max(0, downAt + 20_000 - Date.now())));
    await admin.query(`ALTER DATABASE ${env.db.name} WITH ALLOW_CONNECTIONS true`);
    step('database back');
    const { result } = await endsOnItsOwn(r.handle, 180_000);
    expect(result.phase, result.outcome).toBe('completed');
    expect(result.pause).toBeUndefined();
    expect(result.progress.resign, 're-sign progress counts every manifest').toEqual({
      done: COUNT,
      total: COUNT,
    });
    expectWorkerAlive();
    await expectCleanRotation(env, { identity, ...r, count: COUNT });
    const { rows } = await env.db.pool.query<{ action: string }>(
      `SELECT action FROM audit_log WHERE subject = $1 AND action IN ('rotation.step-failing', 'rotation.step-recovered') ORDER BY id`,
      [`rotation/${identity}`],
    );
    expect(rows.map((x) => x.action)).toEqual(['rotation.step-failing', 'rotation.step-recovered']);
  }, 300_000);
});
