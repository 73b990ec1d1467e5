/**
 * A worker of this test file's own on the run's Temporal dev server: its own task queue, the
 * project's workflow bundle (built once per file), the activities the test hands in.
 */
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Client, Connection } from '@temporalio/client';
import {
  bundleWorkflowCode,
  NativeConnection,
  Runtime,
  Worker,
  type WorkflowBundleWithSourceMap,
} from '@temporalio/worker';
import { inject } from 'vitest';
import { createLogger, temporalLogger } from '../../src/log';

export const WORKFLOWS_PATH = fileURLToPath(new URL('../../src/workflows/index.ts', import.meta.url));

let bundle: Promise<WorkflowBundleWithSourceMap> | undefined;
export function workflowBundle(): Promise<WorkflowBundleWithSourceMap> {
  bundle ??= bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, logger: quietLogger });
  return bundle;
}

const quietLogger = {
  log() {},
  trace() {},
  debug() {},
  info() {},
  warn() {},
  error() {},
};

export interface TestTemporal {
  client: Client;
  connection: Connection;
  nativeConnection: NativeConnection;
  taskQueue: string;
  address: string;
  /** A worker on this file's task queue; `run` it around the code under test. */
  createWorker(
    activities: object,
    options?: { maxConcurrentActivityTaskExecutions?: number },
  ): Promise<Worker>;
  close(): Promise<void>;
}

let runtimeInstalled = false;

/** `address`: another Temporal server than the run's (a test file's own, to kill and restart). */
export async function connectTestTemporal(address = inject('temporalAddress')): Promise<TestTemporal> {
  // Workers log state changes at INFO; tests want warnings and errors only.
  if (!runtimeInstalled) {
    runtimeInstalled = true;
    try {
      // rotor's logger, not the SDK's DefaultLogger: it redacts activity task tokens and secrets.
      Runtime.install({ logger: temporalLogger(createLogger({ level: 'warn' })) });
    } catch {
      // Already installed in this process.
    }
  }
  const connection = await Connection.connect({ address });
  const nativeConnection = await NativeConnection.connect({ address });
  const client = new Client({ connection, namespace: 'default' });
  const taskQueue = `test-${randomBytes(4).toString('hex')}`;
  return {
    client,
    connection,
    nativeConnection,
    taskQueue,
    address,
    async createWorker(activities, options = {}) {
      return Worker.create({
        connection: nativeConnection,
        namespace: 'default',
        taskQueue,
        workflowBundle: await workflowBundle(),
        activities,
        ...options,
      });
    },
    async close() {
      await connection.close();
      await nativeConnection.close();
    },
  };
}
