/**
 * The Temporal server in production shape: its frontend, history, matching and worker services
 * (one process, as compose's `temporalio/auto-setup` runs them) persisting to Postgres through the
 * `postgres12` plugin, its schema made by its own SQL tool. Tests run rotations against it, kill it
 * and start it again on the same databases; `rotor temporal server` runs one by hand.
 *
 * The configuration is written by code, from the facts of the module's
 * `config/development-postgres12.yaml` (persistence, membership, per-service ports, cluster
 * metadata), with every port chosen free at run time. YAML is a superset of JSON, so the file is JSON.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Connection } from '@temporalio/client';
import { msToTs } from '@temporalio/common/lib/time';
import { EnvironmentError, errorMessage } from '../errors';
import { freePort } from '../net/free-port';
import { connect } from '../store/db';
import type { TemporalTools } from './cli-binary';
import { ensureTemporalServer } from './server-binary';

const execFileAsync = promisify(execFile);

/** Where Temporal's two databases live on a Postgres server (never rotor's own database). */
export interface TemporalDatabases {
  /** A URL of the Postgres server (its path is ignored): host, port, user, password. */
  serverUrl: string;
  /** Workflow state (the `temporal` schema). */
  database: string;
  /** Visibility records (the `visibility` schema). */
  visibilityDatabase: string;
}

interface PgFacts {
  host: string;
  port: number;
  user: string;
  password: string;
}

function pgFacts(url: string): PgFacts {
  const u = new URL(url);
  return {
    host: u.hostname || '127.0.0.1',
    port: Number(u.port || 5432),
    user: decodeURIComponent(u.username || 'postgres'),
    password: decodeURIComponent(u.password),
  };
}

const DB_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/**
 * Creates both databases and their schema with the server's SQL tool, as auto-setup does:
 * create-database, setup-schema at version 0.0, update-schema to the newest embedded version.
 */
export async function createTemporalSchema(
  dbs: TemporalDatabases,
  options:
    | { sqlTool: string; log?: (line: string) => void }
    | { tools: TemporalTools; log?: (line: string) => void },
): Promise<void> {
  const sqlTool =
    'sqlTool' in options ? options.sqlTool : (await ensureTemporalServer(options.tools, options.log)).sqlTool;
  const pg = pgFacts(dbs.serverUrl);
  for (const [database, schema] of [
    [dbs.database, 'postgresql/v12/temporal'],
    [dbs.visibilityDatabase, 'postgresql/v12/visibility'],
  ] as const) {
    if (!DB_NAME.test(database)) {
      throw new EnvironmentError(`'${database}' is not a plain lowercase Postgres database name`, 'USAGE');
    }
    const base = [
      '--plugin',
      'postgres12',
      '--endpoint',
      pg.host,
      '--port',
      String(pg.port),
      '--user',
      pg.user,
      ...(pg.password ? ['--password', pg.password] : []),
      '--database',
      database,
    ];
    for (const args of [
      ['create-database'],
      ['setup-schema', '--version', '0.0'],
      ['update-schema', '--schema-name', schema],
    ]) {
      try {
        await execFileAsync(sqlTool, [...base, ...args], { maxBuffer: 16 * 1024 * 1024 });
      } catch (err) {
        const out = `${(err as { stderr?: string }).stderr ?? ''}${(err as { stdout?: string }).stdout ?? ''}`;
        const line = out.trim().split('\n').filter(Boolean).slice(-1)[0] ?? errorMessage(err);
        throw new EnvironmentError(
          `temporal-sql-tool ${args[0]} on database ${database} failed: ${line.replace(pg.password || '\u0000', '***')}`,
          'ENV_TEMPORAL_SCHEMA',
        );
      }
    }
  }
}

/**
 * Copies two databases with their schema (made once by createTemporalSchema) under new names, far
 * faster than the SQL tool. The schema_version row names its database, and the server checks it
 * under its own name, so the copy's row is renamed.
 */
export async function cloneTemporalDatabases(
  template: Omit<TemporalDatabases, 'serverUrl'>,
  target: TemporalDatabases,
): Promise<void> {
  const admin = await connect(target.serverUrl, 1);
  try {
    for (const [name, from] of [
      [target.database, template.database],
      [target.visibilityDatabase, template.visibilityDatabase],
    ] as const) {
      if (!DB_NAME.test(name) || !DB_NAME.test(from)) {
        throw new EnvironmentError(`'${name}' or '${from}' is not a plain lowercase database name`, 'USAGE');
      }
      // A template in use by another copy at the same moment is refused; a moment later it is not.
      for (let attempt = 0; ; attempt++) {
        try {
          await admin.query(`CREATE DATABASE ${name} TEMPLATE ${from}`);
          break;
        } catch (err) {
          if (attempt >= 20 || !/being accessed by other users/.test(errorMessage(err))) throw err;
          await new Promise((r) => setTimeout(r, 250));
        }
      }
      const u = new URL(target.serverUrl);
      u.pathname = `/${name}`;
      const copy = await connect(u.toString(), 1);
      try {
        await copy.query('UPDATE schema_version SET db_name = $1', [name]);
      } finally {
        await copy.end();
      }
    }
  } finally {
    await admin.end();
  }
}

export interface TemporalServerPorts {
  frontend: number;
  frontendHttp: number;
  frontendMembership: number;
  history: number;
  historyMembership: number;
  matching: number;
  matchingMembership: number;
  worker: number;
  workerMembership: number;
}

/** Whether nothing listens on `port` on the loopback address (checked by binding it). */
function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/**
 * Membership ports are stored in a Postgres `smallint` (cluster_membership.rpc_port), so they
 * must stay below 32768, under the kernel's ephemeral range that freePort() draws from.
 */
async function freeLowPort(taken: Set<number>): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    if (!taken.has(port) && (await portIsFree(port))) return port;
  }
  throw new EnvironmentError(
    'no free loopback port between 20000 and 32000 for Temporal membership',
    'ENV_TEMPORAL_START',
  );
}

async function freePorts(): Promise<TemporalServerPorts> {
  const names: (keyof TemporalServerPorts)[] = [
    'frontend',
    'frontendHttp',
    'frontendMembership',
    'history',
    'historyMembership',
    'matching',
    'matchingMembership',
    'worker',
    'workerMembership',
  ];
  const ports = {} as TemporalServerPorts;
  const taken = new Set<number>();
  for (const name of names) {
    let port = name.endsWith('Membership') ? await freeLowPort(taken) : await freePort();
    while (taken.has(port)) port = await freePort();
    taken.add(port);
    ports[name] = port;
  }
  return ports;
}

/** The server's configuration, as the object its YAML file holds. */
export function temporalServerConfig(
  dbs: TemporalDatabases,
  ports: TemporalServerPorts,
  dynamicConfigFile: string,
): Record<string, unknown> {
  const pg = pgFacts(dbs.serverUrl);
  const datastore = (databaseName: string, maxConns: number) => ({
    sql: {
      pluginName: 'postgres12',
      databaseName,
      connectAddr: `${pg.host}:${pg.port}`,
      connectProtocol: 'tcp',
      user: pg.user,
      password: pg.password,
      maxConns,
      // Idle connections are closed: several servers (a test file's own, the run's) share one
      // Postgres whose max_connections (100 by default) the test databases need too.
      maxIdleConns: Math.min(2, maxConns),
      maxConnLifetime: '1h',
    },
  });
  const rpc = (grpcPort: number, membershipPort: number, extra: Record<string, unknown> = {}) => ({
    rpc: { grpcPort, membershipPort, bindOnLocalHost: true, ...extra },
  });
  return {
    log: { stdout: true, level: 'warn' },
    persistence: {
      defaultStore: 'postgres-default',
      visibilityStore: 'postgres-visibility',
      numHistoryShards: 4,
      datastores: {
        'postgres-default': datastore(dbs.database, 8),
        'postgres-visibility': datastore(dbs.visibilityDatabase, 2),
      },
    },
    global: { membership: { maxJoinDuration: '30s', broadcastAddress: '127.0.0.1' } },
    services: {
      frontend: rpc(ports.frontend, ports.frontendMembership, { httpPort: ports.frontendHttp }),
      history: rpc(ports.history, ports.historyMembership),
      matching: rpc(ports.matching, ports.matchingMembership),
      worker: rpc(ports.worker, ports.workerMembership),
    },
    clusterMetadata: {
      enableGlobalNamespace: false,
      failoverVersionIncrement: 10,
      masterClusterName: 'active',
      currentClusterName: 'active',
      clusterInformation: {
        active: {
          enabled: true,
          initialFailoverVersion: 1,
          rpcName: 'frontend',
          rpcAddress: `127.0.0.1:${ports.frontend}`,
        },
      },
    },
    dcRedirectionPolicy: { policy: 'noop' },
    archival: { history: { state: 'disabled' }, visibility: { state: 'disabled' } },
    namespaceDefaults: {
      archival: { history: { state: 'disabled' }, visibility: { state: 'disabled' } },
    },
    dynamicConfigClient: { filepath: dynamicConfigFile, pollInterval: '10s' },
  };
}

/** The development-sql dynamic config's one limit rotor relies on (workflow ids of 255 chars). */
const DYNAMIC_CONFIG = {
  'limit.maxIDLength': [{ value: 255, constraints: {} }],
};

export interface TemporalServer {
  address: string;
  namespace: string;
  ports: TemporalServerPorts;
  databases: TemporalDatabases;
  /** The running process (undefined while killed). */
  readonly process: ChildProcess | undefined;
  /** SIGKILL: no graceful shutdown, as a crashed host. */
  kill(): Promise<void>;
  /** Starts it again on the same databases and ports and waits until it answers. */
  restart(): Promise<void>;
  /** SIGTERM (SIGKILL after 10 s), and the config folder removed. Idempotent. */
  stop(): Promise<void>;
}

export interface TemporalServerOptions {
  /** Where the server's binaries come from (src/config.ts, `RotorConfig.temporalTools`). */
  tools: TemporalTools;
  databases: TemporalDatabases;
  namespace?: string;
  /** Create the databases and schema first (default true); false when they exist (cloned). */
  createSchema?: boolean;
  log?: (line: string) => void;
  startTimeoutMs?: number;
}

/** Starts the server's four services on free loopback ports and registers the namespace. */
export async function startTemporalServer(options: TemporalServerOptions): Promise<TemporalServer> {
  const log = options.log ?? (() => {});
  const binaries = await ensureTemporalServer(options.tools, log);
  if (options.createSchema !== false) {
    await createTemporalSchema(options.databases, { sqlTool: binaries.sqlTool, log });
  }
  const namespace = options.namespace ?? 'default';
  const ports = await freePorts();
  const root = mkdtempSync(join(tmpdir(), 'rotor-temporal-server-'));
  mkdirSync(join(root, 'config'));
  const dynamicConfigFile = join(root, 'config', 'dynamicconfig.yaml');
  writeFileSync(dynamicConfigFile, `${JSON.stringify(DYNAMIC_CONFIG, null, 2)}\n`);
  // Holds the Postgres password when there is one: readable by this user only.
  writeFileSync(
    join(root, 'config', 'rotor.yaml'),
    `${JSON.stringify(temporalServerConfig(options.databases, ports, dynamicConfigFile), null, 2)}\n`,
    { mode: 0o600 },
  );
  const address = `127.0.0.1:${ports.frontend}`;
  let child: ChildProcess | undefined;
  let output = '';
  let stopped = false;

  const onExit = () => child?.kill('SIGKILL');
  process.once('exit', onExit);

  const spawnServer = () => {
    output = '';
    // A process group of its own, like the dev server: a terminal's Ctrl-C is for whoever started it.
    const proc = spawn(
      binaries.server,
      ['--root', root, '--config', 'config', '--env', 'rotor', '--allow-no-auth', 'start'],
      { stdio: ['ignore', 'pipe', 'pipe'], detached: true },
    );
    const keep = (chunk: Buffer) => {
      output = (output + chunk.toString()).slice(-8000);
    };
    proc.stdout?.on('data', keep);
    proc.stderr?.on('data', keep);
    child = proc;
  };

  const killChild = async (signal: NodeJS.Signals) => {
    const proc = child;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) {
      child = undefined;
      return;
    }
    const gone = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    proc.kill(signal);
    const timer = signal === 'SIGKILL' ? undefined : setTimeout(() => proc.kill('SIGKILL'), 10_000);
    await gone;
    if (timer) clearTimeout(timer);
    child = undefined;
  };

  const waitReady = async () => {
    const deadline = Date.now() + (options.startTimeoutMs ?? 90_000);
    for (;;) {
      const proc = child;
      if (!proc || proc.exitCode !== null || proc.signalCode !== null) {
        const last = output.trim().split('\n').filter(Boolean).slice(-3).join(' | ');
        throw new EnvironmentError(
          `the Temporal server (${binaries.server}) exited at start: ${last.slice(0, 600)}`,
          'ENV_TEMPORAL_START',
        );
      }
      try {
        await probe(address, namespace);
        return;
      } catch (err) {
        if (Date.now() > deadline) {
          throw new EnvironmentError(
            `the Temporal server did not answer on ${address} in time (${errorMessage(err).split('\n')[0]})`,
            'ENV_TEMPORAL_START',
          );
        }
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  };

  const server: TemporalServer = {
    address,
    namespace,
    ports,
    databases: options.databases,
    get process() {
      return child;
    },
    async kill() {
      await killChild('SIGKILL');
    },
    async restart() {
      if (stopped) throw new Error('the Temporal server was stopped for good');
      await killChild('SIGKILL');
      spawnServer();
      await waitReady();
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      process.removeListener('exit', onExit);
      await killChild('SIGTERM');
      rmSync(root, { recursive: true, force: true });
    },
  };

  spawnServer();
  try {
    await waitReady();
  } catch (err) {
    await server.stop();
    throw err;
  }
  log(
    `Temporal server ${binaries.server} at ${address} (namespace ${namespace}, Postgres ${options.databases.database})`,
  );
  return server;
}

/**
 * Ready means a workflow can start in the namespace: the frontend answers, the namespace exists
 * (registered here if not, as auto-setup's DEFAULT_NAMESPACE does) and history accepts a start.
 * The probe execution is terminated at once.
 */
async function probe(address: string, namespace: string): Promise<void> {
  const connection = await Connection.connect({ address, connectTimeout: 2_000 });
  try {
    const service = connection.workflowService;
    try {
      await service.describeNamespace({ namespace });
    } catch (err) {
      if (!/not found/i.test(errorMessage(err))) throw err;
      await service
        .registerNamespace({ namespace, workflowExecutionRetentionPeriod: msToTs('1 day') })
        .catch((e: unknown) => {
          if (!/already (exists|registered)/i.test(errorMessage(e))) throw e;
        });
    }
    const workflowId = `rotor-server-probe-${Date.now()}-${Math.random().toString(36).slice(2)}`;
    await service.startWorkflowExecution({
      namespace,
      workflowId,
      workflowType: { name: 'rotor-server-probe' },
      taskQueue: { name: 'rotor-server-probe' },
      requestId: workflowId,
    });
    await service.terminateWorkflowExecution({
      namespace,
      workflowExecution: { workflowId },
      reason: 'readiness probe',
    });
  } finally {
    await connection.close();
  }
}
