/**
 * Re-sign throughput inside a real rotation: a Temporal dev server, and per count a rotor stack
 * (src/rotation/stack.ts: a fresh Postgres database, the HTTP service, a worker in this process)
 * over software or SoftHSM custody. Seeds N manifests, runs a personnel
 * rotation with the timeline compressed, and reads the re-sign step's duration from the
 * workflow's own timeline. Peak RSS and heap of this process (worker + activities) are sampled
 * every 50 ms during the step, so a memory that grows with N shows up across the counts.
 *
 *   node --expose-gc --import tsx bench/rotation-resign.ts [--custodian software|pkcs11] [--counts 10000,100000]
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { initIdentity } from '../src/activities/identity';
import { databaseUrl } from '../src/config';
import type { KeyCustodian } from '../src/custody/custodian';
import { openCustodian } from '../src/custody/index';
import { openSoftwareCustodian } from '../src/custody/software';
import { createSoftHsmToken } from '../src/hsm/softhsm-token';
import { seedManifests } from '../src/rotation/import';
import { startRotorStack } from '../src/rotation/stack';
import { startRotation } from '../src/rotation/start';
import { startDevServer } from '../src/temporal/dev-server';
import type { rotationWorkflow } from '../src/workflows/rotation';
import type { RotationInput } from '../src/workflows/rotation-api';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? fallback : process.argv[i + 1]!;
}

const kind = arg('custodian', 'software') as 'software' | 'pkcs11';
const counts = arg('counts', '10000,100000').split(',').map(Number);

Runtime.install({ logger: new DefaultLogger('WARN') });
const server = await startDevServer();
const token = kind === 'pkcs11' ? await createSoftHsmToken() : undefined;
const keyDir = mkdtempSync(join(tmpdir(), 'rotor-bench-keys-'));
const custodian: KeyCustodian =
  kind === 'pkcs11'
    ? await openCustodian('pkcs11', { ...token!.env, ROTOR_PKCS11_SESSIONS: '4' })
    : await openSoftwareCustodian({ dir: keyDir });
const connection = await Connection.connect({ address: server.address });
const client = new Client({ connection });
const nativeConnection = await NativeConnection.connect({ address: server.address });

const rows: string[] = [];
try {
  for (const count of counts) {
    // A throwaway database per count on DATABASE_URL's server, the HTTP service and the worker.
    const taskQueue = `bench-${randomBytes(3).toString('hex')}`;
    const stack = await startRotorStack({
      postgres: { throwaway: { serverUrl: databaseUrl(), prefix: 'rotor_bench_resign' } },
      temporal: { connection: nativeConnection, namespace: 'default', address: server.address, taskQueue },
      custodian: { custodian, kind },
      http: { anchorMaxAgeSeconds: 1, identity: 'bench' },
      settings: { revokedBy: 'urn:rotor:bench' },
      startWorker: false,
    });
    try {
      const { pool } = stack;
      const { key } = await initIdentity(pool, custodian, 'bench', `bench-${taskQueue}`);
      const signer = await custodian.signer(key.handle);
      const seedStart = performance.now();
      await seedManifests(pool, signer, count, { seed: 3, batchSize: 1000 });
      const seedSeconds = (performance.now() - seedStart) / 1000;
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
          batchSize: 500,
          chunkSize: 20_000,
        },
      };
      global.gc?.();
      const base = process.memoryUsage();
      let peakRss = base.rss;
      let peakHeap = base.heapUsed;
      let peakLive = base.heapUsed;
      let ticks = 0;
      const sampler = setInterval(() => {
        const m = process.memoryUsage();
        peakRss = Math.max(peakRss, m.rss);
        peakHeap = Math.max(peakHeap, m.heapUsed);
        // With --expose-gc, once a second: the heap that is still reachable, garbage excluded.
        if (global.gc && ++ticks % 20 === 0) {
          global.gc();
          peakLive = Math.max(peakLive, process.memoryUsage().heapUsed);
        }
      }, 50);
      const { workflowId } = await startRotation(
        { client, config: { namespace: 'default', taskQueue } },
        input,
      );
      const result = await client.workflow.getHandle<typeof rotationWorkflow>(workflowId).result();
      clearInterval(sampler);
      if (result.phase !== 'completed') throw new Error(`rotation ended ${result.phase}: ${result.outcome}`);
      const step = (s: string) => result.timeline.find((e) => e.step === s)!;
      const seconds = (s: string) =>
        (Date.parse(step(s).actualEnd!) - Date.parse(step(s).actualStart!)) / 1000;
      const resign = seconds('re-sign');
      const revoke = seconds('revoke');
      const mb = (n: number) => (n / 2 ** 20).toFixed(0);
      rows.push(
        `| ${kind} | ${count} | ${resign.toFixed(2)} | ${Math.round(count / resign)} | ${Math.round(count / revoke)} | ${mb(peakRss)} (+${mb(peakRss - base.rss)}) | ${mb(peakHeap)} | ${global.gc ? mb(peakLive) : '—'} | ${Math.round(count / seedSeconds)} |`,
      );
      console.error(rows[rows.length - 1]);
    } finally {
      await stack.stop();
    }
  }
} finally {
  await custodian.close();
  await nativeConnection.close();
  await connection.close();
  await server.stop();
  token?.remove();
  rmSync(keyDir, { recursive: true, force: true });
}

console.log(
  '| custody | manifests | re-sign seconds | re-signed/s | revoked/s | peak RSS MiB (growth) | peak heap MiB | peak live heap MiB | seeded/s |',
);
console.log('|---|---|---|---|---|---|---|---|---|');
for (const r of rows) console.log(r);
