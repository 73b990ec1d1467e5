/**
 * Finds or provides the `temporal` CLI (its dev server runs the tests and the demo).
 * Order: $TEMPORAL_CLI, then PATH, then the cache folder, else `go install` into the cache.
 * Only tags without a `replace` directive in go.mod can be `go install`ed: v1.5.1 is the newest.
 */
import { execFile, execFileSync } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';
import { EnvironmentError, errorMessage } from '../errors';
import { withBuildLock } from './build-lock';

const execFileAsync = promisify(execFile);

export const TEMPORAL_CLI_VERSIONS = ['v1.5.1', 'v1.4.1'] as const;
const MODULE = 'github.com/temporalio/cli/cmd/temporal';

/** Machine-wide, so fresh clones on one machine (CI's) build Temporal once. */
export function cacheRoot(env: NodeJS.ProcessEnv = process.env): string {
  if (env.ROTOR_CACHE_DIR) return env.ROTOR_CACHE_DIR;
  const base = env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(base, 'rotor');
}

export function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function onPath(name: string, env: NodeJS.ProcessEnv): string | undefined {
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, name);
    if (isExecutable(candidate)) return candidate;
  }
  return undefined;
}

export type TemporalCliSource = 'TEMPORAL_CLI' | 'PATH' | 'cache' | 'built';

/** Looks without building. */
export function findTemporalCli(
  env: NodeJS.ProcessEnv = process.env,
): { path: string; source: TemporalCliSource } | undefined {
  if (env.TEMPORAL_CLI) {
    if (!isExecutable(env.TEMPORAL_CLI)) {
      throw new EnvironmentError(
        `TEMPORAL_CLI=${env.TEMPORAL_CLI} is not an executable file: fix the path or unset it`,
        'ENV_TEMPORAL_CLI',
      );
    }
    return { path: env.TEMPORAL_CLI, source: 'TEMPORAL_CLI' };
  }
  const fromPath = onPath('temporal', env);
  if (fromPath) return { path: fromPath, source: 'PATH' };
  for (const version of TEMPORAL_CLI_VERSIONS) {
    const cached = join(cacheRoot(env), `temporal-${version}`, 'temporal');
    if (isExecutable(cached)) return { path: cached, source: 'cache' };
  }
  return undefined;
}

/** $GO_BINARY names the toolchain explicitly; otherwise PATH, then Go's default install folder. */
export function goBinary(env: NodeJS.ProcessEnv): string | undefined {
  if (env.GO_BINARY) return isExecutable(env.GO_BINARY) ? env.GO_BINARY : undefined;
  const fromPath = onPath('go', env);
  if (fromPath) return fromPath;
  return existsSync('/usr/local/go/bin/go') ? '/usr/local/go/bin/go' : undefined;
}

/**
 * Finds the CLI or builds it (minutes, once per machine). `log` receives progress lines.
 * Throws one EnvironmentError saying what to install when nothing works.
 */
export async function ensureTemporalCli(
  log: (line: string) => void = () => {},
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ path: string; source: TemporalCliSource }> {
  const found = findTemporalCli(env);
  if (found) return found;
  const go = goBinary(env);
  if (!go) {
    throw new EnvironmentError(
      'no temporal CLI found and no Go toolchain to build one: install Go (https://go.dev/dl) or the Temporal CLI, or set TEMPORAL_CLI',
      'ENV_TEMPORAL_MISSING',
    );
  }
  const root = cacheRoot(env);
  mkdirSync(root, { recursive: true });
  // One build at a time per machine (build-lock.ts); a waiter finds the binary the other built.
  return withBuildLock(
    join(root, 'temporal-cli.lock'),
    async () => findTemporalCli(env) ?? (await buildCli(go, root, log, env)),
    log,
  );
}

async function buildCli(
  go: string,
  root: string,
  log: (line: string) => void,
  env: NodeJS.ProcessEnv,
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
        env: { ...env, GOBIN: staging, GOFLAGS: env.GOFLAGS ?? '-mod=mod' },
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
