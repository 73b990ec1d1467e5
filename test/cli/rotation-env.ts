/**
 * What the `rotor rotate` and `rotor schedule` suites run against: this file's database, a
 * software custodian in a temp folder, and the rotor stack of src/rotation/stack.ts (the HTTP
 * service the preflight GETs its CRL from, and a worker with the real activities on this file's
 * task queue). The CLI runs as a child process, as an
 * operator would run it, pointed at all of these through its environment.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { initIdentity } from '../../src/activities/identity';
import type { SoftwareCustodian } from '../../src/custody/software';
import { seedManifests } from '../../src/rotation/import';
import { type RotorStack, StopList, startRotorStack } from '../../src/rotation/stack';
import { createTestDatabase, type TestDatabase } from '../helpers/db';
import { connectTestTemporal, type TestTemporal, workflowBundle } from '../helpers/temporal';

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
  // What started so far is stopped, newest first, if a later part fails to start.
  const stops = new StopList((line) => process.stderr.write(`rotation env: ${line}\n`));
  let db: TestDatabase;
  let temporal: TestTemporal;
  let stack: RotorStack;
  try {
    db = await createTestDatabase();
    stops.add('the test database', () => db.drop());
    temporal = await connectTestTemporal();
    stops.add('the Temporal connections', () => temporal.close());
    stack = await startRotorStack({
      postgres: { pool: db.pool },
      temporal: {
        connection: temporal.nativeConnection,
        namespace: 'default',
        address: temporal.address,
        taskQueue: temporal.taskQueue,
        workflowBundle: await workflowBundle(),
      },
      custodian: { kind: 'software' },
      http: { anchorMaxAgeSeconds: 1, identity: 'default' },
      settings: { revokedBy: 'urn:rotor:test' },
    });
    stops.add('the rotor stack', () => stack.stop());
  } catch (err) {
    await stops.run();
    throw err;
  }
  const custodian = stack.custodian as SoftwareCustodian;
  const keyDir = stack.keyDir!;

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
      // Schema-valid manifests: the re-issue decision declines the SDK vectors' deliberately invalid ones.
      await seedManifests(db.pool, await custodian.signer(key.handle), manifests, { seed: manifests });
      return { keyId: key.keyId };
    },
    async close() {
      const failed = await stops.run();
      if (failed.length > 0) throw new Error(`rotation env: could not stop ${failed.join(', ')}`);
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
