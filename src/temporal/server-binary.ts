/**
 * Finds or builds the Temporal server itself (`go.temporal.io/server`, the 1.29.x line the CLI
 * v1.5.1 embeds and compose's `temporalio/auto-setup:1.29.1` runs) with its SQL schema tool, the
 * production shape of Temporal: its four services over Postgres persistence. Built once per
 * machine into the cache, like the CLI (cli-binary.ts).
 * Order: $TEMPORAL_SERVER_DIR (a folder holding `server` and `sql`), then the cache, else build.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { EnvironmentError, errorMessage } from '../errors';
import { withBuildLock } from './build-lock';
import { goBinary, isExecutable, type TemporalTools } from './cli-binary';

const execFileAsync = promisify(execFile);

export const TEMPORAL_SERVER_VERSION = 'v1.29.1';
const MODULE = 'go.temporal.io/server';
/** `go install` names each binary after its package folder: `server` and `sql`. */
const PACKAGES = ['cmd/server', 'cmd/tools/sql'] as const;

export interface TemporalServerBinaries {
  /** The server: `server --root DIR --config config --env NAME start` runs its services. */
  server: string;
  /** temporal-sql-tool: creates the databases and their schema (embedded schema dirs). */
  sqlTool: string;
  source: 'TEMPORAL_SERVER_DIR' | 'cache' | 'built';
}

function binariesIn(dir: string): { server: string; sqlTool: string } | undefined {
  const server = join(dir, 'server');
  const sqlTool = join(dir, 'sql');
  return isExecutable(server) && isExecutable(sqlTool) ? { server, sqlTool } : undefined;
}

export function temporalServerCacheDir(tools: Pick<TemporalTools, 'cacheDir'>): string {
  return join(tools.cacheDir, `temporal-server-${TEMPORAL_SERVER_VERSION}`);
}

/** Looks without building. */
export function findTemporalServer(tools: TemporalTools): TemporalServerBinaries | undefined {
  if (tools.temporalServerDir) {
    const found = binariesIn(tools.temporalServerDir);
    if (!found) {
      throw new EnvironmentError(
        `TEMPORAL_SERVER_DIR=${tools.temporalServerDir} does not hold executable 'server' and 'sql' binaries: fix the path or unset it`,
        'ENV_TEMPORAL_SERVER',
      );
    }
    return { ...found, source: 'TEMPORAL_SERVER_DIR' };
  }
  const cached = binariesIn(temporalServerCacheDir(tools));
  return cached ? { ...cached, source: 'cache' } : undefined;
}

/** Finds the server and its schema tool or builds both (minutes, once per machine). */
export async function ensureTemporalServer(
  tools: TemporalTools,
  log: (line: string) => void = () => {},
): Promise<TemporalServerBinaries> {
  const found = findTemporalServer(tools);
  if (found) return found;
  const go = goBinary(tools);
  if (!go) {
    throw new EnvironmentError(
      'no Temporal server found and no Go toolchain to build one: install Go (https://go.dev/dl) or set TEMPORAL_SERVER_DIR',
      'ENV_TEMPORAL_SERVER_MISSING',
    );
  }
  const dir = temporalServerCacheDir(tools);
  mkdirSync(dir, { recursive: true });
  return withBuildLock(
    `${dir}.lock`,
    async () => {
      // Another process may have built it while this one waited for the lock.
      const built = findTemporalServer(tools);
      if (built) return built;
      return buildInto(dir, go, log, tools);
    },
    log,
  );
}

/**
 * `go install` into a temporary sibling folder, then each binary renamed into the cache (one
 * atomic step per file, same filesystem): the cache never holds a half-written binary, and a build
 * killed midway leaves nothing there.
 */
async function buildInto(
  dir: string,
  go: string,
  log: (line: string) => void,
  tools: TemporalTools,
): Promise<TemporalServerBinaries> {
  const staging = mkdtempSync(`${dir}.build-`);
  log(
    `building the Temporal server ${TEMPORAL_SERVER_VERSION} and its SQL tool with ${go} into ${dir} (once per machine; takes minutes)`,
  );
  try {
    await execFileAsync(
      go,
      ['install', ...PACKAGES.map((p) => `${MODULE}/${p}@${TEMPORAL_SERVER_VERSION}`)],
      {
        env: { ...tools.buildEnv, GOBIN: staging },
        maxBuffer: 64 * 1024 * 1024,
      },
    );
    const made = binariesIn(staging);
    if (!made) {
      throw new EnvironmentError(
        `go install of the Temporal server ${TEMPORAL_SERVER_VERSION} produced no binaries in ${staging}`,
        'ENV_TEMPORAL_SERVER_BUILD',
      );
    }
    // The schema tool first: the cache counts as filled only once `server` is there too.
    renameSync(made.sqlTool, join(dir, 'sql'));
    renameSync(made.server, join(dir, 'server'));
  } catch (err) {
    if (err instanceof EnvironmentError) throw err;
    const stderr = (err as { stderr?: string }).stderr ?? '';
    const last = stderr.trim().split('\n').slice(-1)[0] || errorMessage(err);
    throw new EnvironmentError(
      `could not build the Temporal server ${TEMPORAL_SERVER_VERSION} (${last}): set TEMPORAL_SERVER_DIR to a folder with its 'server' and 'sql' binaries`,
      'ENV_TEMPORAL_SERVER_BUILD',
    );
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
  const built = binariesIn(dir);
  if (!built) {
    throw new EnvironmentError(
      `the Temporal server ${TEMPORAL_SERVER_VERSION} binaries are not executable in ${dir} after the build`,
      'ENV_TEMPORAL_SERVER_BUILD',
    );
  }
  return { ...built, source: 'built' };
}
