/**
 * "A rotor stack": what a rotation needs running besides Temporal and Postgres: the HTTP service
 * (the preflight GETs its CRL; verifiers fetch the anchor and check in there) and a worker with
 * the real activities over one custodian. The test harnesses start it the same way and stop it the
 * same way: on any failure part-way, everything already started is stopped (`StopList`).
 */
import { type NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { createActivities } from '../activities';
import type { ActivityDeps, ActivitySettings } from '../activities/deps';
import type { KeyCustodian } from '../custody/custodian';
import type { CustodianKind } from '../domain';
import { errorMessage } from '../errors';
import { createHttpService, type HttpService, type HttpServiceOptions } from '../http/service';
import type { Pool } from '../store/db';
import { defaultWorkflowSource } from '../worker';

/**
 * What was started, stopped in reverse order. A stop that fails or hangs is reported and the
 * rest still run, so one stuck part never leaves the others running.
 */
export class StopList {
  private readonly stops: { what: string; fn: () => Promise<void> | void }[] = [];

  constructor(
    private readonly report: (line: string) => void = () => {},
    private readonly deadlineMs = 20_000,
  ) {}

  add(what: string, fn: () => Promise<void> | void): void {
    this.stops.push({ what, fn });
  }

  /** Runs every stop, newest first; returns what could not be stopped. */
  async run(): Promise<string[]> {
    const failed: string[] = [];
    for (let s = this.stops.pop(); s; s = this.stops.pop()) {
      try {
        await withDeadline(Promise.resolve(s.fn()), this.deadlineMs, s.what);
      } catch (err) {
        failed.push(s.what);
        this.report(`could not stop ${s.what}: ${errorMessage(err)}`);
      }
    }
    return failed;
  }
}

async function withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} did not stop within ${ms / 1000} s`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

export interface RotorStackOptions {
  pool: Pool;
  /** The custodian new keys are made in; the caller opened it and closes it. */
  custodian: KeyCustodian;
  custodianKind: CustodianKind;
  /** The HTTP service, on a free loopback port (`pool` is the stack's). */
  http: Omit<HttpServiceOptions, 'pool'>;
  /** Activity settings; `publicUrl` defaults to the HTTP service's address. */
  settings: Omit<ActivitySettings, 'publicUrl'> & { publicUrl?: string };
  temporal: {
    connection: NativeConnection;
    namespace: string;
    taskQueue: string;
    /** A prebuilt workflow bundle (tests build one per file); default: the worker's `defaultWorkflowSource()`. */
    workflowBundle?: WorkerOptions['workflowBundle'];
  };
  /** Activities' operator-facing lines. */
  log?: (line: string) => void;
  /** Start the worker now (default), or leave it to `startWorker()`. */
  startWorker?: boolean;
}

export interface RotorStack {
  http: HttpService;
  baseUrl: string;
  deps: ActivityDeps;
  /** The current worker (a new one after each startWorker()). */
  readonly worker: Worker;
  /** Set when the worker stopped on its own, with why. */
  readonly workerFailure: string | undefined;
  startWorker(): Promise<void>;
  /** Drains the worker; the HTTP service keeps running. */
  stopWorker(): Promise<void>;
  /** Stops the worker, then the HTTP service. The pool, connection and custodian stay the caller's. */
  stop(): Promise<void>;
}

export async function startRotorStack(options: RotorStackOptions): Promise<RotorStack> {
  const stops = new StopList(options.log);
  try {
    const http = createHttpService({ ...options.http, pool: options.pool });
    const { port } = await http.listen(0, '127.0.0.1');
    stops.add('the HTTP service', () => http.close());
    const baseUrl = `http://127.0.0.1:${port}`;
    const deps: ActivityDeps = {
      pool: options.pool,
      custodian: async (kind) => {
        if (kind !== options.custodianKind) {
          throw new Error(`this rotor stack holds only a ${options.custodianKind} custodian, not ${kind}`);
        }
        return options.custodian;
      },
      settings: { ...options.settings, publicUrl: options.settings.publicUrl ?? baseUrl },
      log: options.log,
    };
    let worker: Worker | undefined;
    let run: Promise<void> = Promise.resolve();
    let failure: string | undefined;
    const stopWorker = async () => {
      if (worker?.getState() === 'RUNNING') worker.shutdown();
      await run;
    };
    stops.add('the worker', stopWorker);
    const stack: RotorStack = {
      http,
      baseUrl,
      deps,
      get worker() {
        if (!worker) throw new Error('the worker has not been started');
        return worker;
      },
      get workerFailure() {
        return failure;
      },
      async startWorker() {
        const { temporal } = options;
        worker = await Worker.create({
          connection: temporal.connection,
          namespace: temporal.namespace,
          taskQueue: temporal.taskQueue,
          ...(temporal.workflowBundle
            ? { workflowBundle: temporal.workflowBundle }
            : defaultWorkflowSource()),
          activities: createActivities(deps),
        });
        failure = undefined;
        run = worker.run().catch((err: unknown) => {
          failure = errorMessage(err);
        });
      },
      stopWorker,
      async stop() {
        await stops.run();
      },
    };
    if (options.startWorker !== false) await stack.startWorker();
    return stack;
  } catch (err) {
    await stops.run();
    throw err;
  }
}
