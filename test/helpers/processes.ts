/**
 * Which processes are alive, read from /proc: how the suite proves that what a demo, a test or
 * the run's global setup started has stopped (nothing left running on any path).
 */
import { readdirSync, readFileSync } from 'node:fs';

export interface LiveProcess {
  pid: number;
  /** The command line, arguments joined by spaces. */
  command: string;
}

/** Environment variable every process started under a marked parent inherits (see `marked`). */
export const MARK_VARIABLE = 'ROTOR_PROCESS_MARK';

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'latin1');
  } catch {
    return undefined; // gone meanwhile, or not ours to read
  }
}

function live(pid: number): boolean {
  // A zombie has exited; only its parent has not collected it yet.
  const stat = read(`/proc/${pid}/stat`);
  return stat !== undefined && !/^\d+ \(.*\) [ZX] /s.test(stat);
}

/** Live processes whose command line contains `text` (this process excluded). */
export function processesMentioning(text: string): LiveProcess[] {
  const found: LiveProcess[] = [];
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    const command = read(`/proc/${pid}/cmdline`)?.replaceAll('\0', ' ').trim();
    if (command?.includes(text) && live(pid)) found.push({ pid, command });
  }
  return found;
}

/**
 * Live processes that inherited `ROTOR_PROCESS_MARK=<mark>`: everything started, directly or not,
 * by a process given that environment, even after it was re-parented (this process excluded).
 */
export function marked(mark: string): LiveProcess[] {
  const needle = `\0${MARK_VARIABLE}=${mark}\0`;
  const found: LiveProcess[] = [];
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    const environ = read(`/proc/${pid}/environ`);
    if (!environ || !`\0${environ}`.includes(needle)) continue;
    if (!live(pid)) continue;
    found.push({ pid, command: read(`/proc/${pid}/cmdline`)?.replaceAll('\0', ' ').trim() ?? '?' });
  }
  return found;
}

/** Polls until `probe` finds nothing (processes stop asynchronously), at most `ms`; returns what is left. */
export async function settled(probe: () => LiveProcess[], ms = 5_000): Promise<LiveProcess[]> {
  const deadline = Date.now() + ms;
  for (;;) {
    const left = probe();
    if (left.length === 0 || Date.now() > deadline) return left;
    await new Promise((r) => setTimeout(r, 100));
  }
}

export function isAlive(pid: number): boolean {
  return live(pid);
}
