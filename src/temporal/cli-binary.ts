/**
 * Finds or provides the `temporal` CLI (its dev server runs the tests and the demo).
 * Order: $TEMPORAL_CLI, then PATH, then the cache folder, else `go install` into the cache. Those
 * settings come from the caller (`TemporalTools`: src/config.ts's `temporalTools`), never from
 * this process's environment.
 * Only tags without a `replace` directive in go.mod can be `go install`ed: v1.5.1 is the newest.
 */
import { execFile, execFileSync } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';
import { EnvironmentError, errorMessage } from '../errors';
import { withBuildLock } from './build-lock';

const execFileAsync = promisify(execFile);

export const TEMPORAL_CLI_VERSIONS = ['v1.5.1', 'v1.4.1'] as const;
const MODULE = 'github.com/temporalio/cli/cmd/temporal';

/** Where the Temporal binaries come from, as src/config.ts's `temporalTools` parses them from the environment. */
export interface TemporalTools {
  /** ROTOR_CACHE_DIR: machine-wide, so fresh clones on one machine (CI's) build Temporal once. */
  cacheDir: string;
  /** TEMPORAL_CLI */
  temporalCli?: string;
  /** TEMPORAL_SERVER_DIR */
  temporalServerDir?: string;
  /** GO_BINARY */
  goBinary?: string;
  /** PATH */
  searchPath: string;
  /** The environment of a `go install`. */
  buildEnv: Readonly<Record<string, string | undefined>>;
}

export function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function onPath(name: string, searchPath: string): string | undefined {
  for (const dir of searchPath.split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, name);
    if (isExecutable(candidate)) return candidate;
  }
  return undefined;
}

export type TemporalCliSource = 'TEMPORAL_CLI' | 'PATH' | 'cache' | 'built';

/** Looks without building. */
export function findTemporalCli(
  tools: TemporalTools,
): { path: string; source: TemporalCliSource } | undefined {
  if (tools.temporalCli) {
    if (!isExecutable(tools.temporalCli)) {
      throw new EnvironmentError(
        `TEMPORAL_CLI=${tools.temporalCli} is not an executable file: fix the path or unset it`,
        'ENV_TEMPORAL_CLI',
      );
    }
    return { path: tools.temporalCli, source: 'TEMPORAL_CLI' };
  }
  const fromPath = onPath('temporal', tools.searchPath);
  if (fromPath) return { path: fromPath, source: 'PATH' };
  for (const version of TEMPORAL_CLI_VERSIONS) {
    const cached = join(tools.cacheDir, `temporal-${version}`, 'temporal');
    if (isExecutable(cached)) return { path: cached, source: 'cache' };
  }
  return undefined;
}

/** $GO_BINARY names the toolchain explicitly; otherwise PATH, then Go's default install folder. */
export function goBinary(tools: TemporalTools): string | undefined {
  if (tools.goBinary) return isExecutable(tools.goBinary) ? tools.goBinary : undefined;
  const fromPath = onPath('go', tools.searchPath);
  if (fromPath) return fromPath;
  return existsSync('/usr/local/go/bin/go') ? '/usr/local/go/bin/go' : undefined;
}

/**
 * Finds the CLI or builds it (minutes, once per machine). `log` receives progress lines.
 * Throws one EnvironmentError saying what to install when nothing works.
 */
export async function ensureTemporalCli(
  tools: TemporalTools,
  log: (line: string) => void = () => {},
): Promise<{ path: string; source: TemporalCliSource }> {
  const found = findTemporalCli(tools);
  if (found) return found;
  const go = goBinary(tools);
  if (!go) {
    throw new EnvironmentError(
      'no temporal CLI found and no Go toolchain to build one: install Go (https://go.dev/dl) or the Temporal CLI, or set TEMPORAL_CLI',
      'ENV_TEMPORAL_MISSING',
    );
  }
  const root = tools.cacheDir;
  mkdirSync(root, { recursive: true });
  // One build at a time per machine (build-lock.ts); a waiter finds the binary the other built.
  return withBuildLock(
    join(root, 'temporal-cli.lock'),
    async () => findTemporalCli(tools) ?? (await buildCli(go, root, log, tools)),
    log,
  );
}

async function buildCli(
  go: string,
  root: string,
  log: (line: string) => void,
  tools: TemporalTools,
): Promise<{ path: string; source: TemporalCliSource }> {
  const failures: string[] = [];
  for (const version of TEMPORAL_CLI_VERSIONS) {
    const dir = join(root, `temporal-${version}`);
    mkdirSync(dir, { recursive: true });
    // Built into a temporary sibling, then renamed: the cache never holds a half-written binary.
    const staging = mkdtempSync(`${dir}.build-`);
    log(`building the Temporal CLI ${version} with ${go} into ${dir} (once per machine; takes minutes)`);
    try {
      await execFileAsync(go, ['install', `${MODULE}@${version}`], {
        env: { ...tools.buildEnv, GOBIN: staging },
        maxBuffer: 64 * 1024 * 1024,
      });
      if (isExecutable(join(staging, 'temporal'))) {
        const path = join(dir, 'temporal');
        renameSync(join(staging, 'temporal'), path);
        return { path, source: 'built' };
      }
      failures.push(`${version}: go install produced no binary`);
    } catch (err) {
      const stderr = (err as { stderr?: string }).stderr ?? '';
      failures.push(`${version}: ${stderr.trim().split('\n').slice(-1)[0] || errorMessage(err)}`);
    } finally {
      rmSync(staging, { recursive: true, force: true });
    }
  }
  throw new EnvironmentError(
    `could not build the Temporal CLI (${failures.join('; ')}): install it from https://github.com/temporalio/cli/releases and set TEMPORAL_CLI`,
    'ENV_TEMPORAL_BUILD',
  );
}

export function temporalCliVersion(path: string): string {
  return execFileSync(path, ['--version'], { encoding: 'utf8' }).trim();
}
