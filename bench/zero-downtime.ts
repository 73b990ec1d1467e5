/**
 * Zero downtime under load (issue 14, point 3): `npm run bench:zero-downtime`.
 *
 * Starts the whole stack the way `rotor demo` does (a Postgres database: embedded, or a fresh one
 * on DATABASE_URL's server; a Temporal dev server; a `rotor worker` process; a `rotor serve`
 * process; a software custodian in a temp folder) and runs bench/zero-downtime/harness.ts through
 * a personnel rotation, a scheduled one, a rollback during adoption and an escalation to
 * compromise during adoption. Prints the figures, writes the picture (SVG) and exits 1 when any
 * rejection was false.
 *
 *   npm run bench:zero-downtime -- [--agents 600] [--verifiers 4] [--rate 800]
 *       [--scenarios personnel,scheduled,rollback,escalation] [--max-age 2] [--revoke-at 20]
 *       [--decommission-at 25] [--svg docs/images/zero-downtime.svg] [--json FILE] [--mispinned]
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Client, Connection } from '@temporalio/client';
import { initIdentity } from '../src/activities/identity';
import { loadConfig } from '../src/config';
import { openSoftwareCustodian } from '../src/custody/software';
import { openThrowawayDatabase } from '../src/rotation/database';
import { connect } from '../src/store/db';
import { migrate } from '../src/store/migrate';
import { startDevServer } from '../src/temporal/dev-server';
import { chartSvg } from './zero-downtime/chart';
import { formatReport } from './zero-downtime/format';
import { runHarness, SCENARIOS, type ScenarioName } from './zero-downtime/harness';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const TASK_QUEUE = 'rotor-bench';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? fallback : (process.argv[i + 1] ?? fallback);
}
function num(name: string, fallback: number): number {
  const n = Number(arg(name, String(fallback)));
  if (!Number.isFinite(n) || n < 0) throw new Error(`--${name} must be a non-negative number`);
  return n;
}

const scenarios = arg('scenarios', SCENARIOS.join(',')).split(',') as ScenarioName[];
for (const s of scenarios) {
  if (!(SCENARIOS as readonly string[]).includes(s))
    throw new Error(`--scenarios: unknown '${s}', expected some of ${SCENARIOS.join(', ')}`);
}
const svgPath = arg('svg', join(ROOT, 'docs/images/zero-downtime.svg'));
const jsonPath = arg('json', '');
const say = (line: string) => process.stderr.write(`${line}\n`);

const config = loadConfig();
const cleanups: (() => Promise<void> | void)[] = [];
async function main(): Promise<number> {
  const started = Date.now();
  const [temporal, database] = await Promise.all([
    startDevServer({ tools: config.temporalTools }),
    openThrowawayDatabase(config.databaseUrlSet ? config.databaseUrl : undefined),
  ]);
  cleanups.push(
    () => temporal.stop(),
    () => database.remove(),
  );
  say(`zero-downtime: Temporal dev server on ${temporal.address}; Postgres: ${database.where}`);
  const pool = await connect(database.url, 10);
  cleanups.push(() => pool.end());
  await migrate(pool);
  const keyDir = mkdtempSync(join(tmpdir(), 'rotor-zd-keys-'));
  cleanups.push(() => rmSync(keyDir, { recursive: true, force: true }));
  const custodian = await openSoftwareCustodian({ dir: keyDir });
  cleanups.push(() => custodian.close());
  const connection = await Connection.connect({ address: temporal.address });
  cleanups.push(() => connection.close());
  const client = new Client({ connection, namespace: temporal.namespace });

  const report = await runHarness(
    {
      pool,
      databaseUrl: database.url,
      client,
      taskQueue: TASK_QUEUE,
      custodian: 'software',
      async initIdentity(identity) {
        const { key, rootKeys } = await initIdentity(pool, custodian, identity, `zd-${identity}`);
        return {
          signer: await custodian.signer(key.handle),
          root: { threshold: 1, keys: rootKeys.map((k) => ({ kid: k.keyId, publicKey: k.publicKey })) },
        };
      },
      // The worker's preflight checks the CRL endpoint at ROTOR_PUBLIC_URL: started once serve answers.
      async onServe(baseUrl) {
        const worker = await startWorker({
          DATABASE_URL: database.url,
          TEMPORAL_ADDRESS: temporal.address,
          TEMPORAL_NAMESPACE: temporal.namespace,
          ROTOR_TASK_QUEUE: TASK_QUEUE,
          ROTOR_SOFTWARE_KEY_DIR: keyDir,
          ROTOR_PUBLIC_URL: baseUrl,
          ROTOR_LOG_LEVEL: 'info',
        });
        cleanups.push(() => stopChild(worker));
        say('  rotor worker process started');
      },
    },
    {
      identity: 'zero-downtime',
      agents: num('agents', 600),
      verifiers: num('verifiers', 4),
      rate: num('rate', 800),
      scenarios,
      maxAgeSeconds: num('max-age', 2),
      resignAtSeconds: num('resign-at', 2),
      revokeAtSeconds: num('revoke-at', 20),
      decommissionAtSeconds: num('decommission-at', 25),
      holdSeconds: num('hold', 5),
      gapSeconds: num('gap', 4),
      lateShare: num('late-share', 0.15),
      neverShare: num('never-share', 0.05),
      lateFetchSeconds: num('late-fetch', 20),
      mispinnedVerifier: process.argv.includes('--mispinned'),
      log: say,
    },
  );
  process.stdout.write(formatReport(report));
  writeFileSync(
    svgPath,
    chartSvg(
      report,
      `Verification results per second by key: ${scenarios.join(', ')} (${report.verifiers} verifiers, ${Math.round(report.rate)}/s)`,
    ),
  );
  say(`picture: ${svgPath}`);
  if (jsonPath) writeFileSync(jsonPath, `${JSON.stringify(report, null, 1)}\n`);
  say(`whole run ${((Date.now() - started) / 1000).toFixed(0)} s`);
  return report.false === 0 ? 0 : 1;
}

/** `rotor worker` from the sources, as `npm run worker:dev` starts it; resolves once it polls. */
async function startWorker(env: Record<string, string>): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src/worker.ts')], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const tail: string[] = [];
  await new Promise<void>((resolve, reject) => {
    const lines = createInterface({ input: child.stderr! });
    lines.on('line', (line) => {
      tail.push(line);
      if (tail.length > 20) tail.shift();
      if (line.includes('rotor worker started')) resolve();
      // Warnings and errors of the worker (on-call notices among them) stay visible.
      else if (/"level":"(error|fatal)"/.test(line))
        process.stderr.write(`  worker: ${line.slice(0, 400)}\n`);
    });
    child.once('exit', (code) => reject(new Error(`the worker exited with ${code}: ${tail.join('\n')}`)));
  });
  return child;
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

let code = 1;
try {
  code = await main();
} catch (err) {
  process.stderr.write(`zero-downtime: ${err instanceof Error ? err.message : String(err)}\n`);
} finally {
  for (const fn of cleanups.reverse()) {
    try {
      await fn();
    } catch (err) {
      process.stderr.write(`zero-downtime: cleanup: ${err instanceof Error ? err.message : String(err)}\n`);
    }
  }
}
process.exit(code);
