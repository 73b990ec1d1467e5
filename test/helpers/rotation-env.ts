/**
 * Everything a rotation needs, real: this file's own database, an HTTP service on a free port
 * (the preflight GETs its CRL endpoint; verifiers check in there), a custodian (SoftHSM token or a
 * software folder), a worker of its own on the run's Temporal server, and a seeded identity.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import type { Worker } from '@temporalio/worker';
import { inject } from 'vitest';
import { createActivities } from '../../src/activities';
import { rootSetOf } from '../../src/activities/anchor-signing';
import type { ActivityDeps } from '../../src/activities/deps';
import { initIdentity } from '../../src/activities/identity';
import type { CustodianKind, KeyCustodian } from '../../src/custody/custodian';
import { openCustodian } from '../../src/custody/index';
import { openSoftwareCustodian } from '../../src/custody/software';
import { createHttpService, type HttpService } from '../../src/http/service';
import type { RootSet, Signer } from '../../src/manifest';
import { currentRootSet } from '../../src/store/anchor-roots';
import { createPool } from '../../src/store/db';
import { importManifests } from '../../src/store/manifests';
import { syntheticManifests } from '../../src/synthetic/manifests';
import type { RotationPolicy, Trigger } from '../../src/workflows/policy';
import {
  type RotationInput,
  type RotationStatus,
  rotationWorkflowId,
} from '../../src/workflows/rotation-api';
import { createTestDatabase, type TestDatabase } from './db';
import { connectTestTemporal, type TestTemporal } from './temporal';

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
  worker: Worker;
  /** Runs the worker until `stop`. */
  workerRun: Promise<void>;
  startWorker(): Promise<void>;
  stopWorker(): Promise<void>;
  initIdentity(identity: string): Promise<Signer>;
  /** The identity's anchor root set, as a verifier pins it. */
  rootOf(identity: string): Promise<RootSet>;
  seed(identity: string, signer: Signer, count: number): Promise<void>;
  start(identity: string, trigger: Trigger, policy?: Partial<RotationPolicy>): Promise<WorkflowHandle>;
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
  const db = await createTestDatabase();
  const asRole = (role: string) => {
    const url = new URL(db.url);
    url.username = role;
    return createPool(url.toString(), 10);
  };
  const servePool = options.leastPrivilege ? asRole('rotor_serve') : db.pool;
  const workerPool = options.leastPrivilege ? asRole('rotor_worker') : db.pool;
  const temporal = await connectTestTemporal(options.temporalAddress);
  const http = createHttpService({
    pool: servePool,
    anchorMaxAgeSeconds: 1,
    checkInToken: CHECKIN_TOKEN,
    identity: options.identity ?? 'default',
  });
  const { port } = await http.listen(0, '127.0.0.1');
  const baseUrl = `http://127.0.0.1:${port}`;
  const keyDir = mkdtempSync(join(tmpdir(), 'rotor-keys-'));
  let custodian: KeyCustodian;
  if (kind === 'pkcs11') {
    const hsm = inject('softhsm');
    custodian = await openCustodian('pkcs11', {
      ROTOR_PKCS11_MODULE: hsm.modulePath,
      ROTOR_PKCS11_TOKEN_LABEL: hsm.label,
      ROTOR_PKCS11_PIN: hsm.pin,
      ROTOR_PKCS11_SESSIONS: '4',
      SOFTHSM2_CONF: hsm.confPath,
    });
  } else {
    custodian = await openSoftwareCustodian({ dir: keyDir });
  }
  const deps: ActivityDeps = {
    pool: workerPool,
    custodian: async (k) => {
      if (k !== kind) throw new Error(`this test environment holds only a ${kind} custodian, not ${k}`);
      return custodian;
    },
    settings: { revokedBy: 'spiffe://trust.example/security-team', publicUrl: baseUrl },
  };
  const env: RotationEnv = {
    db,
    temporal,
    http,
    baseUrl,
    kind,
    custodian,
    keyDir,
    deps,
    worker: undefined as unknown as Worker,
    workerRun: Promise.resolve(),
    async startWorker() {
      env.worker = await temporal.createWorker(createActivities(deps));
      env.workerRun = env.worker.run();
    },
    async stopWorker() {
      if (!env.worker) return;
      if (env.worker.getState() === 'RUNNING') env.worker.shutdown();
      await env.workerRun;
    },
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
      let batch: { text: string; source: string }[] = [];
      let i = 0;
      for await (const text of syntheticManifests(count, signer, { seed: count })) {
        batch.push({ text, source: `seed:${++i}` });
        if (batch.length === 500) {
          await importManifests(db.pool, batch);
          batch = [];
        }
      }
      if (batch.length) await importManifests(db.pool, batch);
    },
    async start(identity, trigger, policy = {}) {
      const input: RotationInput = {
        identity,
        trigger,
        policy: { ...COMPRESSED, ...policy },
        custodian: kind,
        requestedBy: 'test@rotor',
        reason: `test ${trigger} rotation`,
      };
      return temporal.client.workflow.start('rotationWorkflow', {
        taskQueue: temporal.taskQueue,
        workflowId: rotationWorkflowId(identity),
        args: [input],
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
      await env.stopWorker().catch(() => {});
      await custodian.close();
      await http.close();
      await temporal.close();
      if (servePool !== db.pool) await servePool.end();
      if (workerPool !== db.pool) await workerPool.end();
      await db.drop();
      rmSync(keyDir, { recursive: true, force: true });
    },
  };
  if (options.worker !== false) await env.startWorker();
  return env;
}
