/**
 * One Go build at a time per cache folder. Test processes start in parallel (two Vitest projects,
 * two engineers' runs, CI) and each may find the cache empty; without a lock each would run its own
 * `go install` of the same binaries: on two cores that doubles a build of minutes, and one could
 * copy a binary over the one another is already running.
 *
 * The lock is a file created exclusively (O_EXCL), holding the builder's pid. A waiter polls until
 * the file is gone, then checks the cache again (the build it waited for usually filled it). A lock
 * whose pid no longer runs on this machine is stale (its builder was killed) and is taken over.
 * Two waiters taking over the same stale lock at the same instant could still both build; the
 * callers build into a temporary folder of their own and rename the binaries into the cache, so
 * that costs CPU only, never a half-written binary in the cache.
 */
import { closeSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { errorMessage } from '../errors';

const POLL_MS = 1000;

function holderPid(lockPath: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(lockPath, 'utf8').trim(), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    // Gone between our failed create and this read: the next create attempt decides.
    return undefined;
  }
}

function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the pid exists but belongs to another user, so it runs.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function tryCreate(lockPath: string): boolean {
  let fd: number;
  try {
    fd = openSync(lockPath, 'wx');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw new Error(`cannot create the build lock ${lockPath}: ${errorMessage(err)}`);
  }
  try {
    writeSync(fd, `${process.pid}\n`);
  } finally {
    closeSync(fd);
  }
  return true;
}

/**
 * Runs `build` holding the lock at `lockPath`. `log` hears once that this process waits for
 * another one's build. `build` should look in the cache again first: the wait may have filled it.
 */
export async function withBuildLock<T>(
  lockPath: string,
  build: () => Promise<T>,
  log: (line: string) => void = () => {},
): Promise<T> {
  let announced = false;
  while (!tryCreate(lockPath)) {
    const pid = holderPid(lockPath);
    if (pid !== undefined && !running(pid)) {
      // The builder died without releasing the lock: its partial output is in its own temporary
      // folder (see the callers), so the cache itself is untouched and the build can start over.
      log(`removing the stale build lock ${lockPath} (pid ${pid} is not running)`);
      rmSync(lockPath, { force: true });
      continue;
    }
    if (!announced) {
      announced = true;
      log(`waiting for another process's build (lock ${lockPath}, pid ${pid ?? 'unknown'})`);
    }
    await sleep(POLL_MS);
  }
  try {
    return await build();
  } finally {
    rmSync(lockPath, { force: true });
  }
}
