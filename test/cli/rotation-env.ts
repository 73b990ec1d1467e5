/**
 * What the `rotor rotate` and `rotor schedule` suites run against: this file's database, a
 * software custodian in a temp folder, the HTTP service (the preflight GETs its CRL), and a worker
 * with the real activities on this file's task queue. The CLI runs as a child process, as an
 * operator would run it, pointed at all of these through its environment.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Worker } from '@temporalio/worker';
import { createActivities } from '../../src/activities';
import { initIdentity } from '../../src/activities/identity';
import { openSoftwareCustodian, type SoftwareCustodian } from '../../src/custody/software';
import { createHttpService, type HttpService } from '../../src/http/service';
import { signManifest, uuidv7 } from '../../src/manifest';
import { insertManifest } from '../../src/store/manifests';
import { createTestDatabase, type TestDatabase } from '../helpers/db';
import { connectTestTemporal, type TestTemporal } from '../helpers/temporal';
import { sdkVectors } from '../store/fixtures';

const ROTOR = fileURLToPath(new URL('../../bin/rotor-dev.mjs', import.meta.url));
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RotationEnv {
  db: TestDatabase;
  temporal: TestTemporal;
  custodian: SoftwareCustodian;
  /** Runs `rotor <args>` with this environment. */
  rotor(...args: string[]): Promise<CliResult>;
  /** `rotor <args>` that must exit 0; its stdout parsed as JSON. */
  rotorJson<T>(...args: string[]): Promise<T>;
  /** An identity with an active software key, its first trust anchor, and `manifests` active manifests. */
  initIdentity(identity: string, manifests?: number): Promise<{ keyId: string }>;
  close(): Promise<void>;
}

export async function createRotationEnv(): Promise<RotationEnv> {
  const db = await createTestDatabase();
  const temporal = await connectTestTemporal();
  const keyDir = await mkdtemp(join(tmpdir(), 'rotor-cli-keys-'));
  const custodian = await openSoftwareCustodian({ dir: keyDir });
  const http: HttpService = createHttpService({ pool: db.pool, anchorMaxAgeSeconds: 1, identity: 'default' });
  const { port } = await http.listen(0, '127.0.0.1');
  const activities = createActivities({
    pool: db.pool,
    custodian: async () => custodian,
    settings: { revokedBy: 'urn:rotor:test', publicUrl: `http://127.0.0.1:${port}` },
  });
  const worker: Worker = await temporal.createWorker(activities);
  const running = worker.run();

  const env = {
    ...process.env,
    TEMPORAL_ADDRESS: temporal.address,
    TEMPORAL_NAMESPACE: 'default',
    ROTOR_TASK_QUEUE: temporal.taskQueue,
    DATABASE_URL: db.url,
    ROTOR_CUSTODIAN: 'software',
    ROTOR_SOFTWARE_KEY_DIR: keyDir,
    USER: 'cli-test',
  };

  const rotor = (...args: string[]) =>
    new Promise<CliResult>((resolve) => {
      execFile(
        process.execPath,
        [ROTOR, ...args],
        { env, cwd: ROOT, timeout: 120_000 },
        (err, stdout, stderr) => {
          const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
          resolve({ code, stdout, stderr });
        },
      );
    });

  return {
    db,
    temporal,
    custodian,
    rotor,
    async rotorJson<T>(...args: string[]) {
      const r = await rotor(...args);
      if (r.code !== 0) throw new Error(`rotor ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
      return JSON.parse(r.stdout) as T;
    },
    async initIdentity(identity, manifests = 0) {
      const { key } = await initIdentity(db.pool, custodian, identity, `test-${identity}`);
      const signer = await custodian.signer(key.handle);
      for (let i = 0; i < manifests; i++) {
        const template = sdkVectors.manifests[i % sdkVectors.manifests.length]!.unsigned_json;
        const unsigned = template.replace(/"manifest_id": "[^"]+"/, `"manifest_id": "${uuidv7(new Date())}"`);
        const { text } = await signManifest(unsigned, signer, { signedAt: new Date() });
        await insertManifest(db.pool, { text });
      }
      return { keyId: key.keyId };
    },
    async close() {
      worker.shutdown();
      await running.catch(() => {});
      await http.close();
      await temporal.close();
      await db.drop();
      await rm(keyDir, { recursive: true, force: true });
    },
  };
}

/** Polls `probe` until it returns a value, for states a workflow reaches on its own time. */
export async function eventually<T>(
  probe: () => Promise<T | undefined>,
  what: string,
  tries = 120,
): Promise<T> {
  for (let i = 0; i < tries; i++) {
    const value = await probe();
    if (value !== undefined) return value;
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`gave up waiting for ${what}`);
}
