/**
 * docker-compose.yml's rotor processes, run as compose runs them but without Docker (no engine
 * runs here): the compiled build laid out as the image lays it out (dist/, bin/, package.json),
 * each service's own `command` and `environment` read from docker-compose.yml, the image's `ENV`
 * from the Dockerfile, and nothing inherited from this process's environment. Against the Temporal
 * server on Postgres persistence (compose's `temporal` service is that server) and an empty
 * database of the machine's Postgres (compose's `postgres`), rotor-migrate runs, rotor-worker and
 * rotor-serve start, and rotor-cli initialises an identity, seeds manifests and runs a rotation to
 * its end. Only what names a container or a volume is rewritten (`REWRITES`, each with why).
 *
 * What only Docker can check is listed in the README ("Deploying with compose"): the image build,
 * the non-root user's permissions on the volumes, tini's signal forwarding, the `auto-setup`
 * image's own schema setup, and password authentication (this machine's Postgres trusts local
 * connections, so the roles' passwords are set here but not challenged).
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { parse } from 'yaml';
import { freePort } from '../../src/net/free-port';
import { connect, type Pool } from '../../src/store/db';
import { databaseUrlFor } from '../helpers/db-admin';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** The image's /app: inside the repository so node_modules resolves as the image's own does. */
const APP = join(ROOT, `.cache/compose-processes-${randomBytes(3).toString('hex')}`);
const IDENTITY_DEFAULT = 'default';
const COUNT = 24;

interface Service {
  command?: string[];
  entrypoint?: string[];
  environment?: Record<string, string | number | null>;
}
const compose = parse(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as {
  services: Record<string, Service>;
};

/** What the operator exports before `docker compose up` (the file's header says which). */
const OPERATOR: Record<string, string> = {
  POSTGRES_PASSWORD: 'compose-test-owner',
  ROTOR_WORKER_DB_PASSWORD: `w-${randomBytes(6).toString('hex')}`,
  ROTOR_SERVE_DB_PASSWORD: `s-${randomBytes(6).toString('hex')}`,
  // Its rotation is the workflow rotation/<identity> on the server this project's files share;
  // compose's own default ('default') could be taken by another file (test/helpers/test-identities.ts).
  ROTOR_IDENTITY: 'compose-drill',
};

/** `${NAME}`, `${NAME:-default}`, `${NAME:?message}` as compose resolves them from `OPERATOR`. */
function interpolate(value: string): string {
  return value.replace(/\$\{([A-Z0-9_]+)(?::?([-?])([^}]*))?\}/g, (_m, name: string, op, rest: string) => {
    const set = OPERATOR[name];
    if (set !== undefined && set !== '') return set;
    if (op === '?') throw new Error(`compose refuses to start: ${name} is required (${rest})`);
    return op === '-' ? rest : '';
  });
}

/** The image's `ENV` instruction of the final stage, as key/value pairs. */
function imageEnv(): Record<string, string> {
  const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8').replace(/\\\n\s*/g, ' ');
  const lines = dockerfile.split('\n').filter((l) => l.startsWith('ENV '));
  const out: Record<string, string> = {};
  for (const line of lines)
    for (const [, k, v] of line.slice(4).matchAll(/([A-Z0-9_]+)=(\S+)/g)) out[k!] = v!;
  return out;
}

let database: string;
let keyDir: string;
let pinFile: string;
let servePort: number;
let metricsPort: number;
const taskQueue = `compose-${randomBytes(3).toString('hex')}`;

/**
 * Container names and volume paths become this machine's, and nothing else changes. Each entry:
 * the variable, and what it becomes.
 */
function rewrite(name: string, value: string): string {
  switch (name) {
    case 'DATABASE_URL': {
      // postgres:5432/rotor → the machine's server, an empty database of this test's own.
      const u = new URL(value);
      const local = new URL(databaseUrlFor(inject('adminDatabaseUrl'), database));
      u.hostname = local.hostname;
      u.port = local.port;
      u.pathname = `/${database}`;
      return u.toString();
    }
    case 'TEMPORAL_ADDRESS':
      return inject('temporalAddress'); // temporal:7233 → this run's Temporal server on Postgres
    case 'ROTOR_TASK_QUEUE':
      return taskQueue; // one run's server is shared by the project's files: a queue of this file's own
    case 'ROTOR_PUBLIC_URL':
      return `http://127.0.0.1:${servePort}`; // rotor-serve:8080 → where rotor serve listens here
    case 'ROTOR_HTTP_HOST':
      return '127.0.0.1'; // 0.0.0.0 inside a container is its own network namespace; here it is not
    case 'ROTOR_HTTP_PORT':
      return String(servePort); // 8080 may be taken on a shared machine
    case 'ROTOR_SOFTWARE_KEY_DIR':
      return keyDir; // the rotor-keys volume
    case 'ROTOR_PKCS11_PIN_FILE':
      return pinFile; // the rotor_pkcs11_pin secret
    default:
      return value;
  }
}

/** A service's environment as its container would see it: the image's ENV, then compose's. */
function serviceEnv(service: string): NodeJS.ProcessEnv {
  const s = compose.services[service];
  if (!s) throw new Error(`docker-compose.yml has no service ${service}`);
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: tmpdir(),
    ...imageEnv(),
    // The metrics listener is loopback inside the container; here its port must be free too.
    ROTOR_METRICS_PORT: String(metricsPort),
  };
  for (const [k, v] of Object.entries(s.environment ?? {}))
    env[k] = rewrite(k, interpolate(v === null ? '' : String(v)));
  for (const k of ['SOFTHSM2_CONF']) delete env[k]; // the image's /etc/rotor file does not exist here
  return env;
}

/** A compose `command` (or the rotor-cli entrypoint) as a local argv: tini is the image's PID 1. */
function argvOf(service: string, args: string[] = []): string[] {
  const s = compose.services[service]!;
  const entry = (s.entrypoint ?? []).filter((a) => a !== '/usr/bin/tini' && a !== '--');
  const argv = entry.length > 0 ? [...entry, ...args] : [...(s.command ?? []), ...args];
  expect(argv[0], `${service} runs node`).toBe('node');
  return [process.execPath, ...argv.slice(1)];
}

function runService(
  service: string,
  args: string[] = [],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const [node, ...rest] = argvOf(service, args);
  return new Promise((resolve) => {
    execFile(node!, rest, { cwd: APP, env: serviceEnv(service), timeout: 120_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    );
  });
}

const live: ChildProcess[] = [];
async function startService(service: string, ready: RegExp): Promise<{ output: () => string }> {
  const [node, ...rest] = argvOf(service);
  const child = spawn(node!, rest, { cwd: APP, env: serviceEnv(service), stdio: ['ignore', 'pipe', 'pipe'] });
  live.push(child);
  let output = '';
  const take = (d: Buffer) => {
    output = (output + d.toString()).slice(-20_000);
  };
  child.stdout!.on('data', take);
  child.stderr!.on('data', take);
  const deadline = Date.now() + 90_000;
  while (!ready.test(output)) {
    if (child.exitCode !== null) throw new Error(`${service} exited at start: ${output.slice(-2000)}`);
    if (Date.now() > deadline) throw new Error(`${service} not ready in 90 s: ${output.slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return { output: () => output };
}

describe("docker-compose.yml's rotor processes, without Docker, on the Postgres-backed Temporal server", () => {
  let admin: Pool;
  let pool: Pool | undefined;
  let worker: { output: () => string };

  beforeAll(async () => {
    expect(inject('temporalKind')).toBe('postgres');
    // The image's /app: the compiled build, bin/ and package.json (Dockerfile's final stage).
    const built = await new Promise<{ code: number; stderr: string }>((resolve) =>
      execFile(
        process.execPath,
        ['scripts/build.mjs', '--out', join(APP, 'dist'), '--no-check'],
        { cwd: ROOT, timeout: 390_000 },
        (err, _o, stderr) => resolve({ code: err ? 1 : 0, stderr }),
      ),
    );
    expect(built.code, built.stderr).toBe(0);
    cpSync(join(ROOT, 'bin'), join(APP, 'bin'), { recursive: true });
    cpSync(join(ROOT, 'package.json'), join(APP, 'package.json'));
    // The volumes and the secret.
    const scratch = mkdtempSync(join(tmpdir(), 'rotor-compose-'));
    keyDir = join(scratch, 'keys');
    mkdirSync(keyDir, { mode: 0o700 });
    pinFile = join(scratch, 'pkcs11-pin');
    writeFileSync(pinFile, '', { mode: 0o600 });
    servePort = await freePort();
    metricsPort = await freePort();
    // compose's postgres service makes an empty `rotor` database; rotor-migrate fills it.
    database = `rotor_test_${inject('runId')}_compose_${randomBytes(3).toString('hex')}`;
    admin = await connect(inject('adminDatabaseUrl'), 1);
    await admin.query(`CREATE DATABASE ${database}`);
  }, 420_000);

  afterAll(async () => {
    await Promise.all(
      live.map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            child.once('exit', () => resolve());
            child.kill('SIGTERM');
            setTimeout(() => child.kill('SIGKILL'), 10_000).unref();
          }),
      ),
    );
    await pool?.end();
    if (database) await admin?.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
    await admin?.end();
    rmSync(APP, { recursive: true, force: true });
  }, 60_000);

  it('rotor-migrate makes the schema and the least-privilege roles', async () => {
    const migrated = await runService('rotor-migrate');
    expect(migrated.code, migrated.stderr).toBe(0);
    pool = await connect(databaseUrlFor(inject('adminDatabaseUrl'), database), 2);
    const { rows } = await pool.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = 'public' AND tablename IN ('manifests', 'signing_keys', 'trust_anchors', 'revocations', 'audit_log')",
    );
    expect(rows[0]!.n).toBe(5);
    const roles = await pool.query<{ rolname: string }>(
      "SELECT rolname FROM pg_roles WHERE rolname IN ('rotor_worker', 'rotor_serve') AND rolcanlogin AND NOT rolsuper ORDER BY rolname",
    );
    expect(roles.rows.map((r) => r.rolname)).toEqual(['rotor_serve', 'rotor_worker']);
    // Again, as every `docker compose up` runs it: nothing to do, no error.
    const again = await runService('rotor-migrate');
    expect(again.code, again.stderr).toBe(0);
  });

  it('rotor-serve and rotor-worker start on their roles; rotor-cli runs a rotation to its end', async () => {
    await startService('rotor-serve', /"listening"/);
    worker = await startService('rotor-worker', /rotor worker started/);
    const health = await fetch(`http://127.0.0.1:${servePort}/healthz`);
    expect(health.status).toBe(200);

    // Each long-running process logs in as its own role (compose's DATABASE_URLs, migration 085).
    const { rows: sessions } = await pool!.query<{ usename: string }>(
      'SELECT DISTINCT usename FROM pg_stat_activity WHERE datname = $1 ORDER BY usename',
      [database],
    );
    expect(sessions.map((s) => s.usename)).toEqual(expect.arrayContaining(['rotor_serve', 'rotor_worker']));

    const identity = serviceEnv('rotor-cli').ROTOR_IDENTITY ?? IDENTITY_DEFAULT;
    const init = await runService('rotor-cli', ['key', 'init', '--identity', identity]);
    expect(init.code, init.stderr).toBe(0);
    const key = JSON.parse(init.stdout) as { key_id: string; custodian: string };
    expect(key.custodian).toBe('software');
    const seeded = await runService('rotor-cli', [
      'manifests',
      'seed',
      '--count',
      String(COUNT),
      '--key-id',
      key.key_id,
    ]);
    expect(seeded.code, seeded.stderr).toBe(0);

    const policy = JSON.stringify({
      resignAtSeconds: 1,
      adoptBySeconds: 2,
      revokeAtSeconds: 2,
      decommissionAtSeconds: 6,
      anchorMaxAgeSeconds: 1,
      adoptionMarginSeconds: 0,
      pollSeconds: 1,
      allowSoftwareCustodian: true,
    });
    const started = await runService('rotor-cli', [
      'rotate',
      'start',
      '--identity',
      identity,
      '--trigger',
      'personnel',
      '--reason',
      'compose processes drill',
      '--requested-by',
      'compose-test',
      '--policy-json',
      policy,
    ]);
    expect(started.code, started.stderr).toBe(0);

    let status: {
      phase: string;
      newKeyId?: string;
      progress: { resign: { done: number }; revoke: { done: number } };
    };
    const deadline = Date.now() + 180_000;
    for (;;) {
      const s = await runService('rotor-cli', ['rotate', 'status', identity, '--json']);
      expect(s.code, s.stderr).toBe(0);
      status = JSON.parse(s.stdout);
      if (['completed', 'failed', 'aborted', 'rolled-back'].includes(status.phase)) break;
      if (Date.now() > deadline)
        throw new Error(`rotation still ${status.phase}: ${worker.output().slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 1000));
    }
    expect(status.phase, worker.output().slice(-2000)).toBe('completed');
    expect(status.progress.resign.done).toBe(COUNT);
    expect(status.progress.revoke.done).toBe(COUNT);

    // What verifiers see, from rotor-serve: the new key alone in the anchor, the old key's
    // manifests in the CRL.
    const anchor = (await (
      await fetch(`http://127.0.0.1:${servePort}/.well-known/agent-manifest/trust-anchor`)
    ).json()) as { keys: { key_id: string }[] };
    expect(anchor.keys.map((k) => k.key_id.replace(/^sha256:/, ''))).toEqual([status.newKeyId]);
    const crl = await (
      await fetch(`http://127.0.0.1:${servePort}/.well-known/agent-manifest/revocation`)
    ).text();
    expect(crl.trim().split('\n')).toHaveLength(COUNT);
    const keys = await pool!.query<{ state: string }>('SELECT state FROM signing_keys WHERE key_id = $1', [
      key.key_id,
    ]);
    expect(keys.rows[0]?.state).toBe('destroyed');
  }, 360_000);
});
