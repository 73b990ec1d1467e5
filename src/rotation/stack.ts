/**
 * "A rotor stack": everything a rotation needs running, assembled one way for the demo, the test
 * harnesses and the benchmarks: Postgres (a pool the caller owns, or a throwaway database: embedded,
 * or on a given server), Temporal (a connection the caller owns, or a dev server started here), a
 * custodian (given, or opened here), the HTTP service (the preflight GETs its CRL; verifiers fetch
 * the anchor and check in there) and a worker with the real activities over that custodian.
 * Whatever the stack started it stops, newest first, also when a later part fails to start; what
 * the caller handed in stays the caller's.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { createActivities } from '../activities';
import type { ActivityDeps, ActivitySettings } from '../activities/deps';
import type { KeyCustodian } from '../custody/custodian';
import { openPkcs11Custodian, type Pkcs11Config } from '../custody/index';
import { openSoftwareCustodian } from '../custody/software';
import type { CustodianKind } from '../domain';
import { errorMessage } from '../errors';
import { createHttpService, type HttpService, type HttpServiceOptions } from '../http/service';
import { connect, type Pool } from '../store/db';
import { migrate } from '../store/migrate';
import type { TemporalTools } from '../temporal/cli-binary';
import { startDevServer } from '../temporal/dev-server';
import { defaultWorkflowSource } from '../worker';
import { openThrowawayDatabase, type ThrowawayDatabase } from './database';

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

/** The points at which the stack has one more part running, in order. */
export const STACK_STAGES = ['infrastructure', 'migrations', 'custodian', 'http', 'worker'] as const;
export type StackStage = (typeof STACK_STAGES)[number];

export interface RotorStackOptions {
  /**
   * A pool the caller owns (migrated already), or a throwaway database the stack makes, migrates
   * and removes: on `serverUrl`'s server, or an embedded PostgreSQL when `serverUrl` is unset.
   */
  postgres: { pool: Pool } | { throwaway: { serverUrl?: string; prefix?: string; poolSize?: number } };
  /**
   * Pools the HTTP service and the activities use instead of the stack's (least-privilege roles,
   * migration 085: rotor_serve, rotor_worker); the caller owns them.
   */
  pools?: { serve?: Pool; worker?: Pool };
  /**
   * A worker connection the caller owns, or a Temporal dev server the stack starts (and stops).
   * `workflowBundle`: a prebuilt one (tests build one per file); default `defaultWorkflowSource()`.
   */
  temporal: (
    | { connection: NativeConnection; namespace: string; address?: string }
    | { devServer: { namespace?: string; tools: TemporalTools } }
  ) & { taskQueue: string; workflowBundle?: WorkerOptions['workflowBundle'] };
  /**
   * The custodian new keys are made in: one the caller opened (and closes), or a kind the stack
   * opens: `software` in a temp folder of its own, `pkcs11` as `pkcs11` configures it (the
   * configuration's `custody.pkcs11`, src/config.ts).
   */
  custodian:
    | { custodian: KeyCustodian; kind: CustodianKind }
    | { kind: 'software' }
    | { kind: 'pkcs11'; pkcs11: Pkcs11Config };
  /** The HTTP service, on a free loopback port (`pool` is the stack's). */
  http: Omit<HttpServiceOptions, 'pool'>;
  /** Activity settings; `publicUrl` defaults to the HTTP service's address. */
  settings: Omit<ActivitySettings, 'publicUrl'> & { publicUrl?: string };
  /** Activities' operator-facing lines, and stops that failed. */
  log?: (line: string) => void;
  /** Start the worker now (default), or leave it to `startWorker()`. */
  startWorker?: boolean;
  /**
   * Told each time one more part runs (progress lines). When it throws (an interruption, an
   * injected failure), the stack stops everything it started and the start rejects with that error.
   */
  onStarted?: (stage: StackStage, stack: RotorStackParts) => void | Promise<void>;
}

/** What is running so far, as `onStarted` sees it; every part is there once the start resolved. */
export interface RotorStackParts {
  pool?: Pool;
  /** The throwaway database, when the stack made one. */
  database?: ThrowawayDatabase;
  /** The Temporal address (the dev server's, or the one the caller named). */
  temporalAddress?: string;
  custodian?: KeyCustodian;
  custodianKind: CustodianKind;
  /** The software custodian's folder, when the stack opened one. */
  keyDir?: string;
  http?: HttpService;
  baseUrl?: string;
}

export interface RotorStack extends RotorStackParts {
  pool: Pool;
  custodian: KeyCustodian;
  http: HttpService;
  baseUrl: string;
  namespace: string;
  taskQueue: string;
  deps: ActivityDeps;
  /** The current worker (a new one after each startWorker()). */
  readonly worker: Worker;
  /** Set when the worker stopped on its own, with why. */
  readonly workerFailure: string | undefined;
  startWorker(): Promise<void>;
  /** Drains the worker; everything else keeps running. */
  stopWorker(): Promise<void>;
  /** Stops everything the stack started, newest first; rejects naming what could not be stopped. */
  stop(): Promise<void>;
}

export async function startRotorStack(options: RotorStackOptions): Promise<RotorStack> {
  const log = options.log ?? (() => {});
  const stops = new StopList(log);
  const parts: RotorStackParts = { custodianKind: options.custodian.kind };
  const started = async (stage: StackStage) => options.onStarted?.(stage, parts);
  try {
    // Temporal and Postgres start side by side; whichever started is stopped even if the other failed.
    const t = options.temporal;
    const pg = options.postgres;
    const [temporalStart, databaseStart] = await Promise.allSettled([
      'devServer' in t
        ? startDevServer({ namespace: t.devServer.namespace, tools: t.devServer.tools })
        : undefined,
      'throwaway' in pg ? openThrowawayDatabase(pg.throwaway.serverUrl, pg.throwaway.prefix) : undefined,
    ]);
    if (temporalStart.status === 'fulfilled' && temporalStart.value) {
      const server = temporalStart.value;
      stops.add('the Temporal dev server', () => server.stop());
    }
    if (databaseStart.status === 'fulfilled' && databaseStart.value) {
      const database = databaseStart.value;
      stops.add(database.kind === 'embedded' ? 'the embedded PostgreSQL' : 'the throwaway database', () =>
        database.remove(),
      );
    }
    if (temporalStart.status === 'rejected') throw temporalStart.reason;
    if (databaseStart.status === 'rejected') throw databaseStart.reason;

    let connection: NativeConnection;
    let namespace: string;
    if ('devServer' in t) {
      const server = temporalStart.status === 'fulfilled' ? temporalStart.value! : undefined;
      parts.temporalAddress = server!.address;
      namespace = server!.namespace;
      const opened = await NativeConnection.connect({ address: server!.address });
      stops.add('the worker connection', () => opened.close());
      connection = opened;
    } else {
      connection = t.connection;
      namespace = t.namespace;
      parts.temporalAddress = t.address;
    }
    let pool: Pool;
    if ('throwaway' in pg) {
      const database = databaseStart.status === 'fulfilled' ? databaseStart.value! : undefined;
      parts.database = database;
      const opened = await connect(database!.url, pg.throwaway.poolSize ?? 10);
      stops.add('the Postgres pool', () => opened.end());
      pool = opened;
    } else {
      pool = pg.pool;
    }
    parts.pool = pool;
    await started('infrastructure');

    if ('throwaway' in pg) await migrate(pool);
    await started('migrations');

    let custodian: KeyCustodian;
    const c = options.custodian;
    if ('custodian' in c) {
      custodian = c.custodian;
    } else {
      if (c.kind === 'pkcs11') {
        custodian = await openPkcs11Custodian(c.pkcs11);
      } else {
        const keyDir = mkdtempSync(join(tmpdir(), 'rotor-keys-'));
        stops.add('the software key folder', () => rmSync(keyDir, { recursive: true, force: true }));
        parts.keyDir = keyDir;
        custodian = await openSoftwareCustodian({ dir: keyDir });
      }
      const opened = custodian;
      stops.add('the custodian', () => opened.close());
    }
    parts.custodian = custodian;
    await started('custodian');

    const http = createHttpService({ ...options.http, pool: options.pools?.serve ?? pool });
    const { port } = await http.listen(0, '127.0.0.1');
    stops.add('the HTTP service', () => http.close());
    const baseUrl = `http://127.0.0.1:${port}`;
    parts.http = http;
    parts.baseUrl = baseUrl;
    await started('http');

    const deps: ActivityDeps = {
      pool: options.pools?.worker ?? pool,
      custodian: async (kind) => {
        if (kind !== options.custodian.kind) {
          throw new Error(`this rotor stack holds only a ${options.custodian.kind} custodian, not ${kind}`);
        }
        return custodian;
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
      ...parts,
      pool,
      custodian,
      http,
      baseUrl,
      namespace,
      taskQueue: t.taskQueue,
      deps,
      get worker() {
        if (!worker) throw new Error('the worker has not been started');
        return worker;
      },
      get workerFailure() {
        return failure;
      },
      async startWorker() {
        worker = await Worker.create({
          connection,
          namespace,
          taskQueue: t.taskQueue,
          ...(t.workflowBundle ? { workflowBundle: t.workflowBundle } : defaultWorkflowSource()),
          activities: createActivities(deps),
        });
        failure = undefined;
        run = worker.run().catch((err: unknown) => {
          failure = errorMessage(err);
        });
      },
      stopWorker,
      async stop() {
        const failed = await stops.run();
        if (failed.length > 0) throw new Error(`could not stop ${failed.join(', ')}`);
      },
    };
    if (options.startWorker !== false) {
      await stack.startWorker();
      await started('worker');
    }
    return stack;
  } catch (err) {
    await stops.run();
    throw err;
  }
}
