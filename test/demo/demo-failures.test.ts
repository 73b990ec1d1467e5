/**
 * A demo that fails part-way stops everything it started: for each start-up stage, the demo is
 * made to fail right after it (ROTOR_DEMO_FAIL_AT), and afterwards no process it started (Temporal
 * dev server, embedded Postgres) is alive and none of its temp folders is left.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { DEMO_STAGES } from '../../src/demo/run-demo';
import { MARK_VARIABLE, marked, settled } from '../helpers/processes';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

interface Run {
  code: number | null;
  stderr: string;
  /** Processes carrying this run's mark, alive after it ended. */
  left: { pid: number; command: string }[];
  /** What the run left in its own TMPDIR. */
  leftFiles: string[];
}

const folders: string[] = [];
afterAll(() => {
  for (const f of folders) rmSync(f, { recursive: true, force: true });
});

/** `rotor demo` failing at `stage`, in a TMPDIR of its own, every process it starts marked. */
async function failAt(stage: string): Promise<Run> {
  const mark = `demo-${stage}-${randomBytes(4).toString('hex')}`;
  const tmp = mkdtempSync(join(tmpdir(), 'rotor-demo-fail-'));
  // The embedded Postgres' user (as root: `postgres`) must be able to enter it.
  chmodSync(tmp, 0o755);
  folders.push(tmp);
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    TMPDIR: tmp,
    ROTOR_DEMO_FAIL_AT: stage,
    [MARK_VARIABLE]: mark,
  };
  for (const name of ['TEMPORAL_CLI', 'ROTOR_CACHE_DIR', 'GO_BINARY']) {
    if (process.env[name]) env[name] = process.env[name];
  }
  const out = join(tmp, 'out');
  const { code, stderr } = await new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['bin/rotor-dev.mjs', 'demo', '--count', '20', '--timeline-seconds', '12', '--out', out],
      { cwd: ROOT, env, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let text = '';
    child.stderr.on('data', (c: Buffer) => {
      text += c.toString();
    });
    // Generous: a loaded machine bundles the workflow code slowly.
    const timer = setTimeout(() => child.kill('SIGKILL'), 420_000);
    child.on('error', reject);
    child.on('close', (c) => {
      clearTimeout(timer);
      resolve({ code: c, stderr: text });
    });
  });
  const left = await settled(() => marked(mark));
  // tsx keeps its compile cache in TMPDIR (tsx-<uid>): the CLI's loader, not something the demo started.
  const leftFiles = readdirSync(tmp).filter((n) => n !== 'out' && !n.startsWith('tsx-'));
  return { code, stderr, left, leftFiles };
}

describe('rotor demo failing at each start-up stage', () => {
  // Three at a time: each run starts its own Temporal dev server and Postgres.
  const runs = new Map<string, Promise<Run>>();
  const queue: string[] = [...DEMO_STAGES];
  const slots = Array.from({ length: 3 }, async () => {
    for (let stage = queue.shift(); stage; stage = queue.shift()) {
      const run = failAt(stage);
      runs.set(stage, run);
      await run.catch(() => {});
    }
  });
  const all = Promise.all(slots);

  it.each([...DEMO_STAGES])(
    'after %s: exits 1 naming the failure, nothing left running or on disk',
    async (stage) => {
      while (!runs.has(stage)) await Promise.race([all, new Promise((r) => setTimeout(r, 100))]);
      const run = await runs.get(stage)!;
      expect(run.stderr).toContain(`rotor: injected failure at stage ${stage} (ROTOR_DEMO_FAIL_AT)`);
      expect(run.stderr).not.toContain('could not stop');
      expect(run.code, run.stderr).toBe(1);
      expect(run.left, run.stderr).toEqual([]);
      expect(run.leftFiles, run.stderr).toEqual([]);
    },
    900_000,
  );

  it('refuses an unknown stage by name', async () => {
    const run = await failAt('nonsense');
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(
      `ROTOR_DEMO_FAIL_AT must be one of ${DEMO_STAGES.join(', ')}, got 'nonsense'`,
    );
    expect(run.left).toEqual([]);
  });
});
