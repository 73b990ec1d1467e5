/**
 * Starts a Temporal dev server (the `temporal server start-dev` command) on free loopback ports,
 * headless, and waits until its frontend answers. Used by the test suite and the demo.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Connection } from '@temporalio/client';
import { EnvironmentError } from '../errors';
import { freePort } from '../net/free-port';
import { ensureTemporalCli, type TemporalTools } from './cli-binary';

export interface DevServer {
  address: string;
  namespace: string;
  process: ChildProcess;
  stop(): Promise<void>;
}

export interface DevServerOptions {
  /** Where the `temporal` CLI comes from (src/config.ts, `RotorConfig.temporalTools`). */
  tools: TemporalTools;
  namespace?: string;
  /** Keep the server's SQLite file here; default: a temp folder removed on stop. */
  dbFile?: string;
  log?: (line: string) => void;
  startTimeoutMs?: number;
}

export async function startDevServer(options: DevServerOptions): Promise<DevServer> {
  const log = options.log ?? (() => {});
  const cli = await ensureTemporalCli(options.tools, log);
  const namespace = options.namespace ?? 'default';
  const port = await freePort();
  const httpPort = await freePort();
  const metricsPort = await freePort();
  const tmp = mkdtempSync(join(tmpdir(), 'rotor-temporal-'));
  const dbFile = options.dbFile ?? join(tmp, 'temporal.sqlite');
  const args = [
    'server',
    'start-dev',
    '--headless',
    '--ip',
    '127.0.0.1',
    '--port',
    String(port),
    '--http-port',
    String(httpPort),
    '--metrics-port',
    String(metricsPort),
    '--namespace',
    namespace,
    '--db-filename',
    dbFile,
    '--log-level',
    'error',
  ];
  // A process group of its own: Ctrl-C in a terminal reaches the whole foreground group, and a
  // server that quits at once leaves its clients (a demo's worker) nothing to shut down against.
  // Whoever started it stops it; an 'exit' listener below is the backstop.
  const child = spawn(cli.path, args, { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  const onExit = () => {
    if (!exited) child.kill('SIGKILL');
  };
  process.once('exit', onExit);
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  let exited = false;
  child.on('exit', () => {
    exited = true;
  });
  const address = `127.0.0.1:${port}`;
  const deadline = Date.now() + (options.startTimeoutMs ?? 60_000);
  const stop = async () => {
    process.removeListener('exit', onExit);
    if (!exited) {
      const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await gone;
      clearTimeout(timer);
    }
    rmSync(tmp, { recursive: true, force: true });
  };
  while (true) {
    if (exited) {
      await stop();
      throw new EnvironmentError(
        `the Temporal dev server (${cli.path}) exited at start: ${stderr.trim().split('\n').slice(-1)[0] ?? ''}`,
        'ENV_TEMPORAL_START',
      );
    }
    try {
      const connection = await Connection.connect({ address, connectTimeout: 1_000 });
      try {
        await connection.workflowService.describeNamespace({ namespace });
        break;
      } finally {
        await connection.close();
      }
    } catch {
      if (Date.now() > deadline) {
        await stop();
        throw new EnvironmentError(
          `the Temporal dev server did not answer on ${address} in time`,
          'ENV_TEMPORAL_START',
        );
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  log(`Temporal dev server at ${address} (namespace ${namespace})`);
  return { address, namespace, process: child, stop };
}
