/**
 * The worker's own memory during a real rotation (issue 15: "the worker's peak RSS ≤ 256 MB and
 * memory flat across 100k → 1M"), measured on the process production runs: the compiled worker
 * (`node dist/worker.js`, as compose's rotor-worker runs it) in a process of its own, with the
 * memory settings compose gives it (`NODE_OPTIONS`, `MALLOC_ARENA_MAX` from docker-compose.yml's
 * rotor-worker environment, read here so the figure is of what ships). bench/rotation-resign.ts
 * runs the worker inside the benchmark's own process (with the HTTP service, the Temporal client
 * and tsx), so its RSS is the sum of all of them.
 *
 * Per count: a throwaway database on DATABASE_URL's server, `rotor db migrate`, `rotor key init`,
 * `rotor manifests seed N` (compiled CLI), `rotor serve`, the worker, and a personnel rotation with
 * the timeline compressed; the worker's VmRSS is sampled every 100 ms from /proc and its VmHWM
 * (the kernel's own peak) read at the end.
 *
 *   node --import tsx bench/worker-memory.ts [--counts 100000] [--no-memory-settings] [--json]
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { loadConfig } from '../src/config';
import { freePort } from '../src/net/free-port';
import { openThrowawayDatabase } from '../src/rotation/database';
import { startDevServer } from '../src/temporal/dev-server';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const OUT = join(ROOT, '.cache/bench-worker-memory');

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? fallback : process.argv[i + 1]!;
}
const counts = arg('counts', '100000').split(',').map(Number);
const json = process.argv.includes('--json');
const withSettings = !process.argv.includes('--no-memory-settings');

/** The memory settings compose gives rotor-worker (the names this benchmark is about). */
function composeMemorySettings(): Record<string, string> {
  const compose = parse(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as {
    services: Record<string, { environment?: Record<string, string | number> }>;
  };
  const env = compose.services['rotor-worker']?.environment ?? {};
  const out: Record<string, string> = {};
  for (const name of ['NODE_OPTIONS', 'MALLOC_ARENA_MAX'])
    if (env[name] !== undefined) out[name] = String(env[name]);
  return out;
}

function run(args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(
      process.execPath,
      args,
      { cwd: ROOT, env, maxBuffer: 64 * 2 ** 20, timeout: 3_600_000 },
      (err, stdout, stderr) =>
        err
          ? reject(new Error(`${args.slice(0, 3).join(' ')}: ${stderr.trim().split('\n').at(-1)}`))
          : resolve(stdout),
    ),
  );
}

function rssKiB(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0);
  return { rss: field('VmRSS'), hwm: field('VmHWM') };
}

async function startProcess(args: string[], env: NodeJS.ProcessEnv, ready: RegExp): Promise<ChildProcess> {
  const child = spawn(process.execPath, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const take = (d: Buffer) => {
    output = (output + d.toString()).slice(-10_000);
  };
  child.stdout!.on('data', take);
  child.stderr!.on('data', take);
  const deadline = Date.now() + 120_000;
  while (!ready.test(output)) {
    if (child.exitCode !== null) throw new Error(`${args.join(' ')} exited: ${output.slice(-1000)}`);
    if (Date.now() > deadline) throw new Error(`${args.join(' ')} not ready: ${output.slice(-1000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return child;
}

function stop(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
    setTimeout(() => child.kill('SIGKILL'), 15_000).unref();
  });
}

process.stderr.write("building dist (the image's build)…\n");
await run(['scripts/build.mjs', '--out', join(OUT, 'dist'), '--no-check'], process.env);
const CLI = join(OUT, 'dist/cli/main.js');
const WORKER = join(OUT, 'dist/worker.js');
const config = loadConfig();
const temporal = await startDevServer({ tools: config.temporalTools });
const settings = withSettings ? composeMemorySettings() : {};
try {
  for (const count of counts) {
    const db = await openThrowawayDatabase(config.databaseUrl, 'rotor_bench_memory');
    const keyDir = mkdtempSync(join(tmpdir(), 'rotor-bench-memory-'));
    const port = await freePort();
    const base: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      DATABASE_URL: db.url,
      TEMPORAL_ADDRESS: temporal.address,
      ROTOR_TASK_QUEUE: `bench-memory-${randomBytes(3).toString('hex')}`,
      ROTOR_IDENTITY: 'bench',
      ROTOR_SOFTWARE_KEY_DIR: keyDir,
      ROTOR_PUBLIC_URL: `http://127.0.0.1:${port}`,
      ROTOR_LOG_LEVEL: 'warn',
    };
    let serve: ChildProcess | undefined;
    let worker: ChildProcess | undefined;
    try {
      await run([CLI, 'db', 'migrate'], base);
      const key = JSON.parse(await run([CLI, 'key', 'init', '--identity', 'bench'], base)) as {
        key_id: string;
      };
      const seedStart = performance.now();
      await run([CLI, 'manifests', 'seed', '--count', String(count), '--key-id', key.key_id], base);
      const seedSeconds = (performance.now() - seedStart) / 1000;
      serve = await startProcess(
        [CLI, 'serve'],
        { ...base, ROTOR_HTTP_PORT: String(port), ROTOR_METRICS_PORT: '0' },
        /"listening"/,
      );
      worker = await startProcess(
        [WORKER],
        { ...base, ...settings, ROTOR_LOG_LEVEL: 'info' },
        /rotor worker started/,
      );
      const pid = worker.pid!;
      const atStart = rssKiB(pid);
      const loadBefore = loadavg()[0]!;
      let loadPeak = loadBefore;
      const series: number[] = [];
      let ticks = 0;
      const sampler = setInterval(() => {
        try {
          const slot = Math.floor(ticks++ / 100); // one slot per 10 s
          series[slot] = Math.max(series[slot] ?? 0, Math.round(rssKiB(pid).rss / 1024));
          if (ticks % 10 === 0) loadPeak = Math.max(loadPeak, loadavg()[0]!);
        } catch {
          // the worker exited; the rotation's status says why
        }
      }, 100);
      const policy = {
        resignAtSeconds: 1,
        adoptBySeconds: 2,
        revokeAtSeconds: 2,
        decommissionAtSeconds: 3,
        anchorMaxAgeSeconds: 1,
        adoptionMarginSeconds: 0,
        pollSeconds: 1,
        allowSoftwareCustodian: true,
        minKeyAgeDays: 0,
        chunkSize: 20_000,
      };
      const t0 = performance.now();
      await run(
        [
          CLI,
          'rotate',
          'start',
          '--identity',
          'bench',
          '--trigger',
          'personnel',
          '--reason',
          'benchmark',
          '--policy-json',
          JSON.stringify(policy),
        ],
        base,
      );
      let status: {
        phase: string;
        outcome?: string;
        timeline: { step: string; actualStart?: string; actualEnd?: string }[];
      };
      for (;;) {
        await new Promise((r) => setTimeout(r, 2000));
        status = JSON.parse(await run([CLI, 'rotate', 'status', 'bench', '--json'], base));
        if (['completed', 'failed', 'aborted', 'rolled-back'].includes(status.phase)) break;
      }
      const rotationSeconds = (performance.now() - t0) / 1000;
      clearInterval(sampler);
      const end = rssKiB(pid);
      if (status.phase !== 'completed') throw new Error(`rotation ended ${status.phase}: ${status.outcome}`);
      const seconds = (s: string) => {
        const e = status.timeline.find((x) => x.step === s)!;
        return (Date.parse(e.actualEnd!) - Date.parse(e.actualStart!)) / 1000;
      };
      const row = {
        manifests: count,
        memorySettings: settings,
        workerPeakRssMiB: Math.round(end.hwm / 1024),
        workerRssAtStartMiB: Math.round(atStart.rss / 1024),
        workerRssEvery10sMiB: series,
        resignedPerSecond: Math.round(count / seconds('re-sign')),
        revokedPerSecond: Math.round(count / seconds('revoke')),
        seedSeconds: Number(seedSeconds.toFixed(1)),
        rotationSeconds: Number(rotationSeconds.toFixed(1)),
        load1Before: Number(loadBefore.toFixed(1)),
        load1Peak: Number(loadPeak.toFixed(1)),
      };
      if (json) console.log(JSON.stringify(row));
      else console.error(row);
    } finally {
      await stop(worker);
      await stop(serve);
      await db.remove();
      rmSync(keyDir, { recursive: true, force: true });
    }
  }
} finally {
  await temporal.stop();
  rmSync(OUT, { recursive: true, force: true });
}
