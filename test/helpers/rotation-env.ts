/**
 * Everything a rotation needs, real: this file's own database, a custodian (SoftHSM token or a
 * software folder), and the rotor stack of src/rotation/stack.ts over them: an HTTP service on a
 * free port (the preflight GETs its CRL endpoint; verifiers check in there) and a worker of its
 * own on the run's Temporal server. A part that fails to start stops the parts before it.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import type { Worker } from '@temporalio/worker';
import { inject } from 'vitest';
import { rootSetOf } from '../../src/activities/anchor-signing';
import type { ActivityDeps } from '../../src/activities/deps';
import { initIdentity } from '../../src/activities/identity';
import type { CustodianKind, KeyCustodian } from '../../src/custody/custodian';
import type { HttpService } from '../../src/http/service';
import type { RootSet, Signer } from '../../src/manifest';
import { seedManifests } from '../../src/rotation/import';
import { type RotorStack, StopList, startRotorStack } from '../../src/rotation/stack';
import { currentRootSet } from '../../src/store/anchor-roots';
import { createPool } from '../../src/store/db';
import type { RotationPolicy, Trigger } from '../../src/workflows/policy';
import {
  type RotationInput,
  type RotationStatus,
  rotationWorkflowId,
} from '../../src/workflows/rotation-api';
import { createTestDatabase, type TestDatabase } from './db';
import { connectTestTemporal, type TestTemporal, workflowBundle } from './temporal';

export const CHECKIN_TOKEN = 'test-checkin-token';

/** Seconds, not hours: the runbook's order with a timeline a test can wait out. */
export const COMPRESSED: Partial<RotationPolicy> = {
  resignAtSeconds: 1,
  adoptBySeconds: 3,
  revokeAtSeconds: 3,
  decommissionAtSeconds: 4,
  anchorMaxAgeSeconds: 1,
  adoptionMarginSeconds: 0,
  pollSeconds: 1,
  gateSliceSeconds: 1,
  verifierLivenessSeconds: 60,
  allowSoftwareCustodian: true,
  batchSize: 200,
  chunkSize: 1000,
  // These suites check v0.1 re-issue (twins as JSON text); the v0.1 -> v0.2 migration, the
  // production default, has its own suite (test/rotation/migration-v02.test.ts).
  reissueAs: 'same',
  // Agents' manifest cache lifetime: never-seen agents hold revocation this long after release.
  deliveryMaxAgeSeconds: 1,
  pickupMarginSeconds: 0,
};

export interface RotationEnv {
  db: TestDatabase;
  temporal: TestTemporal;
  http: HttpService;
  baseUrl: string;
  kind: CustodianKind;
  custodian: KeyCustodian;
  /** The software custodian's folder (empty under pkcs11). */
  keyDir: string;
  deps: ActivityDeps;
  /** The current worker (a new one after each startWorker()). */
  readonly worker: Worker;
  startWorker(): Promise<void>;
  stopWorker(): Promise<void>;
  initIdentity(identity: string): Promise<Signer>;
  /** The identity's anchor root set, as a verifier pins it. */
  rootOf(identity: string): Promise<RootSet>;
  seed(identity: string, signer: Signer, count: number): Promise<void>;
  /**
   * The workflow ID is rotation/<identity> on the run's Temporal server, which every file of the
   * project shares: two files starting the same identity at once collide, so each file uses names
   * of its own (test/foundation/test-identities.test.ts checks).
   */
  start(
    identity: string,
    trigger: Trigger,
    policy?: Partial<RotationPolicy>,
    /** `taskQueue`: another queue than the env's (a test whose cases run side by side, each with its workers). */
    options?: { workflowTaskTimeout?: string; taskQueue?: string },
  ): Promise<WorkflowHandle>;
  waitForPhase(handle: WorkflowHandle, phases: string[], timeoutMs?: number): Promise<RotationStatus>;
  waitForStatus(
    handle: WorkflowHandle,
    what: string,
    test: (s: RotationStatus) => boolean,
    timeoutMs?: number,
  ): Promise<RotationStatus>;
  /** The rotation's result; a step that failed and paused the rotation fails the test at once. */
  finish(handle: WorkflowHandle, timeoutMs?: number): Promise<RotationStatus>;
  close(): Promise<void>;
}

export interface RotationEnvOptions {
  /**
   * Whose anchor the env's HTTP service publishes (and the default identity of the check-ins it
   * takes). Workflow ids are per identity and the run's Temporal server is shared by every test
   * file, so a file that starts rotations uses an identity of its own.
   */
  identity?: string;
  /** Another Temporal server than the run's (default: the run's). */
  temporalAddress?: string;
  /** Start the in-process worker (default true); false when worker processes do the work. */
  worker?: boolean;
  /**
   * Run the HTTP service and the activities as the least-privilege roles migration 085 makes
   * (rotor_serve, rotor_worker) instead of the database's owner; the test's own setup stays owner.
   */
  leastPrivilege?: boolean;
}

export async function createRotationEnv(
  kind: CustodianKind,
  options: RotationEnvOptions = {},
): Promise<RotationEnv> {
  // What started so far is stopped, newest first, if a later part fails to start.
  const stops = new StopList((line) => process.stderr.write(`rotation env: ${line}\n`));
  let stack: RotorStack;
  let db: TestDatabase;
  let temporal: TestTemporal;
  let keyDir: string;
  try {
    db = await createTestDatabase();
    stops.add('the test database', () => db.drop());
    const asRole = (role: string) => {
      const url = new URL(db.url);
      url.username = role;
      const pool = createPool(url.toString(), 10);
      stops.add(`the ${role} pool`, () => pool.end());
      return pool;
    };
    const pools = options.leastPrivilege
      ? { serve: asRole('rotor_serve'), worker: asRole('rotor_worker') }
      : undefined;
    temporal = await connectTestTemporal(options.temporalAddress);
    stops.add('the Temporal connections', () => temporal.close());
    const hsm = kind === 'pkcs11' ? inject('softhsm') : undefined;
    stack = await startRotorStack({
      postgres: { pool: db.pool },
      pools,
      temporal: {
        connection: temporal.nativeConnection,
        namespace: 'default',
        address: temporal.address,
        taskQueue: temporal.taskQueue,
        workflowBundle: await workflowBundle(),
      },
      custodian: hsm
        ? {
            kind: 'pkcs11' as const,
            // The run's token; its SOFTHSM2_CONF is this process's already (test/global-setup.ts).
            pkcs11: { modulePath: hsm.modulePath!, tokenLabel: hsm.label!, pin: hsm.pin!, sessions: 4 },
          }
        : { kind: 'software' as const },
      http: { anchorMaxAgeSeconds: 1, checkInToken: CHECKIN_TOKEN, identity: options.identity ?? 'default' },
      settings: { revokedBy: 'spiffe://trust.example/security-team' },
      startWorker: options.worker !== false,
    });
    stops.add('the rotor stack', () => stack.stop());
    // Worker processes of a pkcs11 test are still handed a (then empty) software key folder.
    if (stack.keyDir) {
      keyDir = stack.keyDir;
    } else {
      const empty = mkdtempSync(join(tmpdir(), 'rotor-keys-'));
      stops.add('the key folder', () => rmSync(empty, { recursive: true, force: true }));
      keyDir = empty;
    }
  } catch (err) {
    await stops.run();
    throw err;
  }
  const { custodian } = stack;
  const env: RotationEnv = {
    db,
    temporal,
    http: stack.http,
    baseUrl: stack.baseUrl,
    kind,
    custodian,
    keyDir,
    deps: stack.deps,
    get worker() {
      return stack.worker;
    },
    startWorker: () => stack.startWorker(),
    stopWorker: () => stack.stopWorker(),
    async initIdentity(identity) {
      const { key } = await initIdentity(
        db.pool,
        custodian,
        identity,
        `test-${identity}-${randomBytes(4).toString('hex')}`,
      );
      return custodian.signer(key.handle);
    },
    async rootOf(identity) {
      const root = await currentRootSet(db.pool, identity);
      if (!root) throw new Error(`identity ${identity} has no anchor root`);
      return rootSetOf(root);
    },
    async seed(_identity, signer, count) {
      await seedManifests(db.pool, signer, count, { seed: count });
    },
    async start(identity, trigger, policy = {}, options = {}) {
      const input: RotationInput = {
        identity,
        trigger,
        policy: { ...COMPRESSED, ...policy },
        custodian: kind,
        requestedBy: 'test@rotor',
        reason: `test ${trigger} rotation`,
      };
      const { taskQueue = temporal.taskQueue, ...rest } = options;
      return temporal.client.workflow.start('rotationWorkflow', {
        taskQueue,
        workflowId: rotationWorkflowId(identity),
        args: [input],
        ...rest,
      });
    },
    async waitForPhase(handle, phases, timeoutMs = 60_000) {
      return env.waitForStatus(
        handle,
        `phase ${phases.join('|')}`,
        (s) => phases.includes(s.phase),
        timeoutMs,
      );
    },
    async waitForStatus(handle, what, test, timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      let last: RotationStatus | undefined;
      while (Date.now() < deadline) {
        try {
          last = await handle.query<RotationStatus>('status');
          if (test(last)) return last;
        } catch {
          // The first workflow task may not have run yet.
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`rotation did not reach ${what} in ${timeoutMs} ms; last: ${JSON.stringify(last)}`);
    },
    async finish(handle, timeoutMs = 120_000) {
      const result = handle.result() as Promise<RotationStatus>;
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const done = await Promise.race([
          result.then(() => true),
          new Promise((r) => setTimeout(() => r(false), 250)),
        ]);
        if (done) return result;
        const status = await handle.query<RotationStatus>('status').catch(() => undefined);
        const failure = status?.blockers.find((b) => / failed: /.test(b));
        if (status?.paused && failure) throw new Error(`rotation paused on a failed step: ${failure}`);
        if (Date.now() > deadline)
          throw new Error(`rotation did not finish in ${timeoutMs} ms: ${JSON.stringify(status)}`);
      }
    },
    async close() {
      const failed = await stops.run();
      if (failed.length > 0) throw new Error(`rotation env: could not stop ${failed.join(', ')}`);
    },
  };
  return env;
}
