/**
 * A pool of node:worker_threads for the re-sign step (issue 15): parsing, verifying and signing a
 * batch is CPU work, and on the activity's own thread it ran on one core while the other waited on
 * Postgres. Each batch is split across one thread per core; the activity's thread meanwhile pages
 * the store and writes the previous batches. A software key is cloned to the threads (a KeyObject
 * crosses postMessage); an HSM key stays with its custodian, and the threads send it the bytes to
 * sign (its sessions sign side by side on libuv's threads).
 *
 * ROTOR_SIGN_THREADS sets the number of threads (default: the cores node reports); 0 keeps the
 * work on the activity's thread.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { Signer } from '../manifest/signer';
import { type BatchFacts, type BatchRow, type SignedRows, signRows } from './reissue-batch';
import type { ThreadJob, ThreadReply, ThreadSigned } from './sign-thread';

// Under tsx or Vitest this module is TypeScript and so is the thread's; built, both are .js.
const OWN_EXTENSION = import.meta.url.endsWith('.ts') ? 'ts' : 'js';
const THREAD_FILE = fileURLToPath(new URL(`./sign-thread.${OWN_EXTENSION}`, import.meta.url));

/** tsx's ESM API module, from its package's exports (the ESM build: its register() takes effect). */
function tsxApiUrl(): string {
  const require = createRequire(import.meta.url);
  const manifest = require.resolve('tsx/package.json');
  const pkg = JSON.parse(readFileSync(manifest, 'utf8')) as {
    exports: Record<string, { import: { default: string } }>;
  };
  return pathToFileURL(join(dirname(manifest), pkg.exports['./esm/api']!.import.default)).href;
}

/** Below this many rows a batch is not worth splitting across threads. */
const MIN_ROWS_PER_THREAD = 16;

interface Pending {
  resolve: (r: SignedRows) => void;
  reject: (e: Error) => void;
  signer: Signer;
  /** The custodian's own error when a signature asked of it failed: what the step fails with. */
  signError?: unknown;
}

class SignThread {
  readonly worker: Worker;
  readonly pending = new Map<number, Pending>();
  dead = false;

  constructor() {
    this.worker =
      OWN_EXTENSION === 'js'
        ? new Worker(THREAD_FILE)
        : // Under tsx or Vitest the thread is TypeScript too: it registers tsx (a dev dependency)
          // before loading it (a worker's execArgv does not carry --import's loader in Node 20).
          new Worker(
            `import(${JSON.stringify(tsxApiUrl())}).then((tsx) => {
               tsx.register();
               return import(${JSON.stringify(pathToFileURL(THREAD_FILE).href)});
             });`,
            { eval: true },
          );
    this.worker.unref();
    this.worker.on('message', (msg: ThreadReply) => this.onMessage(msg));
    const fail = (err: Error) => {
      this.dead = true;
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    };
    this.worker.on('error', fail);
    this.worker.on('exit', (code) => fail(new Error(`sign thread exited (code ${code})`)));
  }

  private onMessage(msg: ThreadReply): void {
    const p = this.pending.get(msg.job);
    if (!p) return;
    if ('sign' in msg) {
      p.signer.sign(msg.message).then(
        (signature) => this.worker.postMessage({ signed: msg.sign, signature } satisfies ThreadSigned),
        (err: unknown) => {
          p.signError ??= err;
          this.worker.postMessage({
            signed: msg.sign,
            error: err instanceof Error ? err.message : String(err),
          } satisfies ThreadSigned);
        },
      );
      return;
    }
    this.pending.delete(msg.job);
    if ('result' in msg) p.resolve(msg.result);
    else if (p.signError !== undefined) p.reject(p.signError as Error);
    else {
      const err = new Error(msg.error.message);
      err.name = msg.error.name;
      if (msg.error.code) (err as Error & { code: string }).code = msg.error.code;
      p.reject(err);
    }
  }
}

let threads: SignThread[] | undefined;
let nextJob = 0;

/**
 * Threads idle this long are ended (and started again by the next batch). A thread that once
 * loaded a module loader (tsx, under development and tests) keeps the process alive even when
 * unref'd, so a process that re-signed once would never exit on its own otherwise.
 */
const IDLE_MS = 5_000;
let idle: NodeJS.Timeout | undefined;
function endWhenIdle(): void {
  if (idle) idle.refresh();
  else {
    idle = setTimeout(() => {
      idle = undefined;
      if ((threads ?? []).some((t) => t.pending.size > 0)) endWhenIdle();
      else void closeSignPool();
    }, IDLE_MS);
    idle.unref();
  }
}

/** The pool's size: ROTOR_SIGN_THREADS as the worker's settings carry it (`signThreads`), else one per core. */
function signThreadCount(configured: number | undefined): number {
  return configured ?? availableParallelism();
}

function pool(want: number): SignThread[] {
  threads = (threads ?? []).filter((t) => !t.dead);
  while (threads.length < want) threads.push(new SignThread());
  return threads;
}

function run(thread: SignThread, rows: BatchRow[], facts: BatchFacts, signer: Signer): Promise<SignedRows> {
  return new Promise((resolve, reject) => {
    const job = nextJob++;
    thread.pending.set(job, { resolve, reject, signer });
    const message: ThreadJob = {
      job,
      rows,
      facts,
      signer: {
        keyId: signer.keyId,
        keyType: signer.keyType,
        publicKey: signer.publicKey,
        ...(signer.threadKey ? { threadKey: signer.threadKey as ThreadJob['signer']['threadKey'] } : {}),
      },
    };
    thread.worker.postMessage(message);
  });
}

/** `signRows` for a batch, spread over the pool's threads (or on this thread, with 0 threads). */
export async function signRowsOnPool(
  rows: BatchRow[],
  facts: BatchFacts,
  signer: Signer,
  /** Threads to spread over (0: this thread); default one per core. */
  threadCount?: number,
): Promise<SignedRows> {
  const want = signThreadCount(threadCount);
  if (want === 0 || rows.length === 0) return signRows(rows, facts, signer);
  const all = pool(want);
  const n = Math.max(1, Math.min(all.length, Math.floor(rows.length / MIN_ROWS_PER_THREAD)));
  const size = Math.ceil(rows.length / n);
  endWhenIdle();
  const parts = await Promise.all(
    Array.from({ length: n }, (_, i) => run(all[i]!, rows.slice(i * size, (i + 1) * size), facts, signer)),
  ).finally(endWhenIdle);
  return {
    twins: parts.flatMap((p) => p.twins),
    declined: parts.flatMap((p) => p.declined),
    withLogEntry: parts.reduce((a, p) => a + p.withLogEntry, 0),
  };
}

/** Ends the pool's threads (tests, shutdown); the next batch starts new ones. */
export async function closeSignPool(): Promise<void> {
  clearTimeout(idle);
  idle = undefined;
  const all = threads ?? [];
  threads = undefined;
  await Promise.all(all.map((t) => t.worker.terminate()));
}
