/**
 * The rotor worker: runs the rotation workflows and their activities on task queue `rotor`
 * (ROTOR_TASK_QUEUE), configured once from the environment (`loadConfig`, src/config.ts) at start.
 * SIGINT/SIGTERM drain it gracefully.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { NativeConnection, Runtime, Worker, type WorkerOptions } from '@temporalio/worker';
import { createActivities } from './activities';
import type { ActivityDeps } from './activities/deps';
import { parseFailpoint } from './activities/failpoint';
import { loadConfig, type RotorConfig, temporalConnectionOptions } from './config';
import { custodianCache } from './custody/index';
import { errorMessage, RotorError, UsageError } from './errors';
import { createLogger, temporalLogger } from './log';
import { connect, type Pool } from './store/db';

/** This module runs from src/ (tsx, tests) or from dist/ (`npm run build`): `.ts` or `.js` siblings. */
const OWN_EXTENSION = import.meta.url.endsWith('.ts') ? 'ts' : 'js';
export const WORKFLOWS_PATH = fileURLToPath(new URL(`./workflows/index.${OWN_EXTENSION}`, import.meta.url));
/** Written by `npm run build` beside dist/worker.js; never present in src/. */
export const PREBUILT_WORKFLOW_BUNDLE = fileURLToPath(new URL('./workflow-bundle.js', import.meta.url));

/**
 * Where the worker takes its workflow code: the bundle built ahead of time when there is one (a
 * production start then skips webpack), else src/workflows or dist/workflows bundled at start.
 */
export function defaultWorkflowSource(): Pick<WorkerOptions, 'workflowBundle' | 'workflowsPath'> {
  if (OWN_EXTENSION === 'js' && existsSync(PREBUILT_WORKFLOW_BUNDLE))
    return { workflowBundle: { codePath: PREBUILT_WORKFLOW_BUNDLE } };
  return { workflowsPath: WORKFLOWS_PATH };
}

/**
 * The worker's database pool. A worker frozen inside a transaction (a stopped process, a VM
 * paused, a stop-the-world pause) keeps its row locks, and the worker that takes its activity
 * over on the heartbeat timeout then waits on them for as long as the freeze lasts: its re-sign
 * or revoke of the same batch blocks on the frozen insert (test/faults/concurrent-attempts.test.ts).
 * The worker's transactions never wait on anything but Postgres and one HSM signature, so
 * Postgres may end any that sits idle for 10 s; its locks go, the frozen attempt's commit fails
 * when it wakes, and nothing it wrote stays.
 */
export const WORKER_IDLE_IN_TRANSACTION_SECONDS = 10;

export function connectWorkerDatabase(url: string): Promise<Pool> {
  return connect(url, 10, { idleInTransactionSeconds: WORKER_IDLE_IN_TRANSACTION_SECONDS });
}

export interface RotorWorkerOptions {
  connection: NativeConnection;
  namespace: string;
  taskQueue: string;
  pool: Pool;
  /** The custodians, the activities' settings and (tests only) the failpoint. */
  config: Pick<RotorConfig, 'custody' | 'worker' | 'failpoint'>;
  log?: (line: string) => void;
  /** A prebuilt workflow bundle (tests, the demo); default: `defaultWorkflowSource()`. */
  workflowBundle?: WorkerOptions['workflowBundle'];
  /** Polling and caching limits (tests that freeze a worker); default: the SDK's. */
  limits?: Pick<
    WorkerOptions,
    'maxCachedWorkflows' | 'maxConcurrentActivityTaskExecutions' | 'maxConcurrentWorkflowTaskExecutions'
  >;
}

export async function createRotorWorker(
  options: RotorWorkerOptions,
): Promise<{ worker: Worker; close(): Promise<void> }> {
  const custodians = custodianCache(options.config.custody);
  // Test-only (src/activities/failpoint.ts): unset in production, so `failpoint` stays undefined.
  const failpoint = parseFailpoint(options.config.failpoint);
  const deps: ActivityDeps = {
    pool: options.pool,
    custodian: (kind) => custodians.get(kind),
    settings: options.config.worker,
    log: options.log,
    ...(failpoint ? { failpoint } : {}),
  };
  const activities: Record<string, unknown> = createActivities(deps);
  if (failpoint) {
    const fn = activities[failpoint.activity] as ((...args: unknown[]) => Promise<unknown>) | undefined;
    if (typeof fn !== 'function')
      throw new UsageError(
        `ROTOR_FAILPOINT names activity '${failpoint.activity}', which the worker does not have`,
        'FAILPOINT_INVALID',
      );
    activities[failpoint.activity] = failpoint.watch(fn);
  }
  const worker = await Worker.create({
    connection: options.connection,
    namespace: options.namespace,
    taskQueue: options.taskQueue,
    ...(options.workflowBundle ? { workflowBundle: options.workflowBundle } : defaultWorkflowSource()),
    activities: activities as ReturnType<typeof createActivities>,
    ...options.limits,
  });
  return { worker, close: () => custodians.closeAll() };
}

async function main(): Promise<void> {
  // Parsed here, once; what the worker uses is checked before it connects to anything.
  const config = loadConfig();
  const logger = createLogger({ level: config.logLevel, base: { component: 'worker' } });
  // Before any connection: the Runtime is process-wide and takes its logger once. Activity and
  // workflow lines then carry their workflow id, activity id and attempt.
  Runtime.install({ logger: temporalLogger(logger) });
  const temporal = config.temporal;
  const pool = await connectWorkerDatabase(config.databaseUrl);
  let connection: NativeConnection;
  try {
    connection = await NativeConnection.connect(temporalConnectionOptions(temporal));
  } catch (err) {
    throw new RotorError(
      `cannot reach Temporal at ${temporal.address} (${errorMessage(err)}): start it or set TEMPORAL_ADDRESS`,
      'ENV_TEMPORAL_UNREACHABLE',
      3,
    );
  }
  // No `log` line sink for the activities: under this worker they log through the Runtime logger
  // (stepLog), which carries the workflow id; the sink is for embedders without one (the demo).
  const { worker, close } = await createRotorWorker({
    connection,
    namespace: temporal.namespace,
    taskQueue: temporal.taskQueue,
    pool,
    config,
  });
  logger.info(
    { address: temporal.address, namespace: temporal.namespace, taskQueue: temporal.taskQueue },
    'rotor worker started',
  );
  try {
    await worker.run();
  } finally {
    await close();
    await connection.close();
    await pool.end();
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((err: unknown) => {
    // One line, not a structured record: the logger may be what failed to start (a bad level).
    process.stderr.write(`rotor worker: ${errorMessage(err)}\n`);
    process.exit(err instanceof RotorError ? err.exitCode : 1);
  });
}
