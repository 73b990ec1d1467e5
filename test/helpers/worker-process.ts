/**
 * Rotor workers in processes of their own, on a test's task queue: to SIGKILL one, SIGSTOP it
 * past its heartbeat timeout and SIGCONT it, and to find which one holds a running activity.
 * Every process started here is killed by `killAllWorkerProcesses` (and at exit, as a backstop).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import { inject } from 'vitest';
import type { RotationEnv } from './rotation-env';
import { workflowBundle } from './temporal';

const ROOT = join(import.meta.dirname, '../..');
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

let bundleFile: Promise<string> | undefined;
function bundlePath(): Promise<string> {
  bundleFile ??= workflowBundle().then((bundle) => {
    const file = join(mkdtempSync(join(tmpdir(), 'rotor-bundle-')), 'workflows.js');
    writeFileSync(file, bundle.code);
    return file;
  });
  return bundleFile;
}

export interface WorkerProcess {
  pid: number;
  child: ChildProcess;
  output(): string;
  /** Resolves when the process has exited. */
  exited: Promise<void>;
  signal(sig: NodeJS.Signals): void;
  /** SIGKILL and wait for the exit. */
  kill(): Promise<void>;
}

/** The environment compose gives the worker, pointed at this test's database, server and queue. */
export function workerEnv(env: RotationEnv): NodeJS.ProcessEnv {
  const hsm = inject('softhsm');
  return {
    ...process.env,
    DATABASE_URL: env.db.url,
    TEMPORAL_ADDRESS: env.temporal.address,
    TEMPORAL_NAMESPACE: 'default',
    ROTOR_TASK_QUEUE: env.temporal.taskQueue,
    ROTOR_SOFTWARE_KEY_DIR: env.keyDir,
    ROTOR_PUBLIC_URL: env.baseUrl,
    ROTOR_REVOKED_BY: 'spiffe://trust.example/security-team',
    ...(hsm.available
      ? {
          SOFTHSM2_CONF: hsm.confPath,
          ROTOR_PKCS11_MODULE: hsm.modulePath,
          ROTOR_PKCS11_TOKEN_LABEL: hsm.label,
          ROTOR_PKCS11_PIN: hsm.pin,
        }
      : {}),
  };
}

export async function startWorkerProcess(
  env: RotationEnv,
  extraEnv: NodeJS.ProcessEnv = {},
): Promise<WorkerProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/fixtures/worker-process.ts'], {
    cwd: ROOT,
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...workerEnv(env), ROTOR_TEST_WORKFLOW_BUNDLE: await bundlePath(), ...extraEnv },
  });
  live.add(child);
  let output = '';
  child.stderr?.on('data', (d: Buffer) => {
    output = (output + d.toString()).slice(-20_000);
  });
  const exited = new Promise<void>((resolve) =>
    child.once('exit', () => {
      live.delete(child);
      resolve();
    }),
  );
  const deadline = Date.now() + 90_000;
  while (!output.includes('worker ready')) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`worker process exited at start: ${output.slice(-2000)}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`worker process not ready in 90 s: ${output.slice(-2000)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    pid: child.pid!,
    child,
    output: () => output,
    exited,
    signal: (sig) => child.kill(sig),
    async kill() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGCONT');
        child.kill('SIGKILL');
      }
      await exited;
    },
  };
}

export async function killAllWorkerProcesses(): Promise<void> {
  await Promise.all(
    [...live].map(async (child) => {
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGCONT');
      child.kill('SIGKILL');
      await gone;
    }),
  );
}

/** The worker process that last took the rotation's running activity `type` (by its identity, pid@host). */
export async function holderOf(
  handle: WorkflowHandle,
  type: string,
  workers: WorkerProcess[],
  timeoutMs = 60_000,
): Promise<WorkerProcess> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { raw } = await handle.describe();
    for (const a of raw.pendingActivities ?? []) {
      if (a.activityType?.name !== type || !a.lastWorkerIdentity) continue;
      const pid = Number(a.lastWorkerIdentity.split('@')[0]);
      const found = workers.find((w) => w.pid === pid);
      if (found) return found;
    }
    if (Date.now() > deadline) throw new Error(`no worker holds a running ${type} activity`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
