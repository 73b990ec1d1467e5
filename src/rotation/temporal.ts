/**
 * What the rotation layer needs of Temporal: a client, its namespace and the task queue rotor's
 * workers poll. The CLI hands in its connection (src/cli/temporal-client.ts); `rotor serve`, the
 * demo, the tests and the benchmarks can hand in theirs.
 */
import { type Client, isGrpcDeadlineError } from '@temporalio/client';
import { EnvironmentError } from '../errors';

export interface RotationTemporal {
  client: Client;
  config: { namespace: string; taskQueue: string };
}

/** The workflow type name workers register the rotation under (src/workflows/index.ts). */
export const ROTATION_TYPE = 'rotationWorkflow';

/**
 * Runs a call that needs a worker to answer (a query, an update) with a deadline, so a missing
 * worker is reported instead of hanging the caller.
 */
export async function needingWorker<T>(
  t: RotationTemporal,
  what: string,
  seconds: number,
  fn: () => Promise<T>,
): Promise<T> {
  try {
    return await t.client.withDeadline(Date.now() + seconds * 1000, fn);
  } catch (err) {
    if (isGrpcDeadlineError(err) || isGrpcDeadlineError((err as { cause?: unknown })?.cause)) {
      throw new EnvironmentError(
        `no worker answered ${what} within ${seconds}s on task queue ${t.config.taskQueue}: is a rotor worker running (npm run worker)?`,
        'ENV_NO_WORKER',
      );
    }
    throw err;
  }
}
