/**
 * Re-sign and revoke throughput inside a real rotation (issue 15): a Temporal dev server, and per
 * count a rotor stack (src/rotation/stack.ts: a fresh Postgres database, the HTTP service, a worker
 * in this process over a prebuilt workflow bundle) over software or SoftHSM custody. Seeds N v0.1 manifests from a child process (so neither the seeding nor webpack
 * is in this process's memory), runs a personnel rotation with the timeline compressed, and reads
 * the re-sign and revoke steps' durations from the workflow's own timeline. Every original is
 * verified before its twin is signed (decideReissue; README "Verify before trust"): `verified`.
 *
 * In the same run, before each count, the raw ceilings: node:crypto verify-then-sign over a
 * manifest-sized message on one thread per core (`rawVerifySignPerSecond`), and for pkcs11 the
 * token's own signing rate with the same number of sessions (`rawHsmSignPerSecond`).
 *
 *   node --expose-gc --import tsx bench/rotation-resign.ts [--custodian software|pkcs11] [--counts 10000,100000] [--json]
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker as Thread } from 'node:worker_threads';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { initIdentity } from '../src/activities/identity';
import { closeSignPool } from '../src/activities/sign-pool';
import { loadConfig, pkcs11Config } from '../src/config';
import type { KeyCustodian } from '../src/custody/custodian';
import { openPkcs11Custodian } from '../src/custody/index';
import { openSoftwareCustodian } from '../src/custody/software';
import { createSoftHsmToken } from '../src/hsm/softhsm-token';
import { seedManifests } from '../src/rotation/import';
import { startRotorStack } from '../src/rotation/stack';
import { startRotation } from '../src/rotation/start';
import { connect } from '../src/store/db';
import { startDevServer } from '../src/temporal/dev-server';
import { WORKFLOWS_PATH } from '../src/worker';
import type { rotationWorkflow } from '../src/workflows/rotation';
import type { RotationInput } from '../src/workflows/rotation-api';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? fallback : process.argv[i + 1]!;
}

const kind = arg('custodian', 'software') as 'software' | 'pkcs11';
const SESSIONS = 4;

async function openBenchCustodian(keyDir: string, env: NodeJS.ProcessEnv): Promise<KeyCustodian> {
  return kind === 'pkcs11'
    ? openPkcs11Custodian(pkcs11Config({ ...env, ROTOR_PKCS11_SESSIONS: String(SESSIONS) }))
    : openSoftwareCustodian({ dir: keyDir });
}

// Child mode: seed a database with N signed manifests, streaming (batches of 1,000), then exit.
if (process.argv.includes('--seed')) {
  const custodian = await openBenchCustodian(arg('key-dir', ''), process.env);
  const pool = await connect(arg('seed', ''), 2);
  const signer = await custodian.signer(arg('handle', ''));
  await seedManifests(pool, signer, Number(arg('count', '0')), { seed: 3, batchSize: 1000 });
  await pool.end();
  await custodian.close();
  process.exit(0);
}

const counts = arg('counts', '10000,100000').split(',').map(Number);
const json = process.argv.includes('--json');

/** Raw node:crypto verify-then-sign, one thread per core, over a manifest-sized message. */
async function rawVerifySign(message: Buffer, seconds: number): Promise<number> {
  const code = `
    const { parentPort, workerData } = require('node:worker_threads');
    const { generateKeyPairSync, sign, verify } = require('node:crypto');
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const msg = Buffer.from(workerData.message);
    const sig = sign(null, msg, privateKey);
    let n = 0; const end = Date.now() + workerData.ms; const t0 = performance.now();
    while (Date.now() < end) {
      if (!verify(null, msg, publicKey, sig)) throw new Error('raw verify failed');
      sign(null, msg, privateKey); n++;
    }
    parentPort.postMessage(n / ((performance.now() - t0) / 1000));`;
  const rates = await Promise.all(
    Array.from(
      { length: availableParallelism() },
      () =>
        new Promise<number>((resolve, reject) => {
          const t = new Thread(code, { eval: true, workerData: { message, ms: seconds * 1000 } });
          t.once('message', resolve);
          t.once('error', reject);
        }),
    ),
  );
  return Math.round(rates.reduce((a, b) => a + b, 0));
}

/**
 * CPU seconds used so far by this machine's processes, grouped: this process (the worker, its
 * sign threads and activities), Postgres (its backends and background processes) and the rest
 * (the Temporal dev server, other work). Read from /proc, so a process that starts and ends
 * between two readings is missed; the stack's Postgres connections live through the rotation.
 */
function cpuSecondsByGroup(): { worker: number; postgres: number; other: number } {
  const hz = 100; // USER_HZ: 100 on Linux's every mainstream architecture.
  const groups = { worker: 0, postgres: 0, other: 0 };
  for (const pid of readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(pid)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      continue;
    }
    const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const seconds = (Number(fields[11]) + Number(fields[12])) / hz;
    if (Number(pid) === process.pid) groups.worker += seconds;
    else if (comm === 'postgres') groups.postgres += seconds;
    else groups.other += seconds;
  }
  return groups;
}

/** The token's own signing rate: SESSIONS signatures in flight, the same message. */
async function rawHsmSign(custodian: KeyCustodian, handle: string, message: Buffer, seconds: number) {
  const signer = await custodian.signer(handle);
  let n = 0;
  const end = Date.now() + seconds * 1000;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: SESSIONS }, async () => {
      while (Date.now() < end) {
        await signer.sign(message);
        n++;
      }
    }),
  );
  return Math.round(n / ((performance.now() - t0) / 1000));
}

Runtime.install({ logger: new DefaultLogger('ERROR') });
const config = loadConfig();
const server = await startDevServer({ tools: config.temporalTools });
const token = kind === 'pkcs11' ? await createSoftHsmToken() : undefined;
// SoftHSM2 reads SOFTHSM2_CONF from this process's environment at C_Initialize; rotor never sets
// it, so the benchmark that made the token does, once, before opening the custodian.
if (token) process.env.SOFTHSM2_CONF = token.confPath;
const keyDir = mkdtempSync(join(tmpdir(), 'rotor-bench-keys-'));
const custodian = await openBenchCustodian(keyDir, token?.env ?? {});
const connection = await Connection.connect({ address: server.address });
const client = new Client({ connection });
const nativeConnection = await NativeConnection.connect({ address: server.address });
// Bundled in a child process: webpack's memory stays out of the worker's RSS.
const bundlePath = join(keyDir, 'workflow-bundle.js');
{
  const r = spawnSync(
    process.execPath,
    [
      '--import',
      'tsx',
      '-e',
      `import('@temporalio/worker').then(async ({ bundleWorkflowCode }) => { const b = await bundleWorkflowCode({ workflowsPath: ${JSON.stringify(WORKFLOWS_PATH)}, logger: { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} } }); require('node:fs').writeFileSync(${JSON.stringify(bundlePath)}, b.code); })`,
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  if (r.status !== 0) throw new Error('bundling the workflows failed');
}

const results: Record<string, unknown>[] = [];
try {
  for (const count of counts) {
    // A throwaway database per count on DATABASE_URL's server, the HTTP service and the worker.
    const taskQueue = `bench-${randomBytes(3).toString('hex')}`;
    const stack = await startRotorStack({
      postgres: { throwaway: { serverUrl: config.databaseUrl, prefix: 'rotor_bench_resign' } },
      temporal: {
        connection: nativeConnection,
        namespace: 'default',
        address: server.address,
        taskQueue,
        workflowBundle: { codePath: bundlePath },
      },
      custodian: { custodian, kind },
      http: { anchorMaxAgeSeconds: 1, identity: 'bench' },
      settings: { revokedBy: 'urn:rotor:bench' },
      startWorker: false,
    });
    try {
      const { pool } = stack;
      const url = stack.database!.url;
      const { key } = await initIdentity(pool, custodian, 'bench', `bench-${taskQueue}`);
      const loadBefore = loadavg()[0]!;
      const seedStart = performance.now();
      const seeded = spawnSync(
        process.execPath,
        [
          '--import',
          'tsx',
          new URL(import.meta.url).pathname,
          '--seed',
          url,
          '--count',
          String(count),
          '--custodian',
          kind,
          '--key-dir',
          keyDir,
          '--handle',
          key.handle,
        ],
        { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, ...(token?.env ?? {}) } },
      );
      if (seeded.status !== 0) throw new Error(`seeding failed (exit ${seeded.status})`);
      const seedSeconds = (performance.now() - seedStart) / 1000;
      const { rows: sample } = await pool.query<{ text: string }>('SELECT text FROM manifests LIMIT 1');
      const message = Buffer.from(sample[0]!.text);
      const rawVerifySignPerSecond = await rawVerifySign(message, 3);
      const rawHsmSignPerSecond =
        kind === 'pkcs11' ? await rawHsmSign(custodian, key.handle, message, 3) : undefined;

      await stack.startWorker();
      const input: RotationInput = {
        identity: 'bench',
        trigger: 'personnel',
        custodian: kind,
        requestedBy: 'bench',
        reason: 'benchmark',
        policy: {
          resignAtSeconds: 1,
          adoptBySeconds: 2,
          revokeAtSeconds: 2,
          decommissionAtSeconds: 3,
          anchorMaxAgeSeconds: 1,
          adoptionMarginSeconds: 0,
          allowSoftwareCustodian: true,
          pollSeconds: 1,
          batchSize: Number(arg('batch', '500')),
          chunkSize: 20_000,
        },
      };
      global.gc?.();
      const base = process.memoryUsage();
      let peakRss = base.rss;
      let peakHeap = base.heapUsed;
      let peakLive = base.heapUsed;
      let ticks = 0;
      let loadPeak = loadavg()[0]!;
      // Peak RSS per 10 s of the rotation: flat memory shows as a flat series, whatever N is.
      const rssSeries: number[] = [];
      const sampler = setInterval(() => {
        const m = process.memoryUsage();
        peakRss = Math.max(peakRss, m.rss);
        const slot = Math.floor(ticks / 200);
        rssSeries[slot] = Math.max(rssSeries[slot] ?? 0, Math.round(m.rss / 2 ** 20));
        peakHeap = Math.max(peakHeap, m.heapUsed);
        // With --expose-gc, once a second: the heap that is still reachable, garbage excluded.
        if (++ticks % 20 === 0) {
          loadPeak = Math.max(loadPeak, loadavg()[0]!);
          if (global.gc) {
            global.gc();
            peakLive = Math.max(peakLive, process.memoryUsage().heapUsed);
          }
        }
      }, 50);
      const cpuBefore = cpuSecondsByGroup();
      const rotationStart = performance.now();
      const { workflowId } = await startRotation(
        { client, config: { namespace: 'default', taskQueue } },
        input,
      );
      const result = await client.workflow.getHandle<typeof rotationWorkflow>(workflowId).result();
      const rotationSeconds = (performance.now() - rotationStart) / 1000;
      clearInterval(sampler);
      const cpuAfter = cpuSecondsByGroup();
      if (result.phase !== 'completed') throw new Error(`rotation ended ${result.phase}: ${result.outcome}`);
      const { rows: states } = await pool.query<{ status: string; n: string }>(
        'SELECT status, count(*) AS n FROM manifests GROUP BY status',
      );
      const byStatus = Object.fromEntries(states.map((s) => [s.status, Number(s.n)]));
      const { rows: crl } = await pool.query<{ n: string }>('SELECT count(*) AS n FROM revocations');
      if (byStatus.revoked !== count || Number(crl[0]!.n) !== count || byStatus.active !== count)
        throw new Error(`after the rotation: ${JSON.stringify(byStatus)}, ${crl[0]!.n} CRL records`);
      const step = (s: string) => result.timeline.find((e) => e.step === s)!;
      const seconds = (s: string) =>
        (Date.parse(step(s).actualEnd!) - Date.parse(step(s).actualStart!)) / 1000;
      const resign = seconds('re-sign');
      const revoke = seconds('revoke');
      const mib = (n: number) => Math.round(n / 2 ** 20);
      const row = {
        custodian: kind,
        ...(kind === 'pkcs11' ? { sessions: SESSIONS } : {}),
        manifests: count,
        verified: true,
        resignSeconds: Number(resign.toFixed(2)),
        resignedPerSecond: Math.round(count / resign),
        revokeSeconds: Number(revoke.toFixed(2)),
        revokedPerSecond: Math.round(count / revoke),
        rawVerifySignPerSecond,
        resignOfRaw: Number((count / resign / rawVerifySignPerSecond).toFixed(2)),
        ...(rawHsmSignPerSecond === undefined
          ? {}
          : {
              rawHsmSignPerSecond,
              resignOfRawHsm: Number((count / resign / rawHsmSignPerSecond).toFixed(2)),
            }),
        // Where the machine's CPU went during the rotation (re-sign, revoke and the steps between),
        // in CPU microseconds per manifest: 2 cores give at most 2,000,000 per second.
        cpuMicrosPerManifest: Object.fromEntries(
          (['worker', 'postgres', 'other'] as const).map((g) => [
            g,
            Math.round(((cpuAfter[g] - cpuBefore[g]) * 1e6) / count),
          ]),
        ),
        peakRssMiB: mib(peakRss),
        rssAtStartMiB: mib(base.rss),
        peakHeapMiB: mib(peakHeap),
        peakLiveHeapMiB: global.gc ? mib(peakLive) : null,
        rssEvery10sMiB: rssSeries,
        seedSeconds: Number(seedSeconds.toFixed(1)),
        rotationSeconds: Number(rotationSeconds.toFixed(1)),
        totalSeconds: Number((seedSeconds + rotationSeconds).toFixed(1)),
        load1Before: Number(loadBefore.toFixed(1)),
        load1Peak: Number(loadPeak.toFixed(1)),
      };
      results.push(row);
      if (json) console.log(JSON.stringify(row));
      else console.error(row);
    } finally {
      await stack.stop();
    }
  }
} finally {
  await custodian.close();
  await nativeConnection.close();
  await connection.close();
  await server.stop();
  await closeSignPool();
  token?.remove();
  rmSync(keyDir, { recursive: true, force: true });
}
