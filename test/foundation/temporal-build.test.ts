/**
 * Building the Temporal server into the machine-wide cache (src/temporal/server-binary.ts,
 * build-lock.ts): two processes that find the cache empty at once build it once, and a lock left by
 * a killed builder does not block the next one.
 *
 * `fake-go` stands in for the Go toolchain (GO_BINARY): a real `go install` of the server takes
 * minutes of both cores, and what is checked here is how rotor's processes share the build, not
 * what Go produces (the real build runs in .ci/run and serves the temporal-postgres project). It
 * records each call and waits for this test's go-ahead, so the second process is seen waiting while
 * the first one builds, whatever the machine's load.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { temporalTools } from '../../src/config';
import { ensureTemporalServer, temporalServerCacheDir } from '../../src/temporal/server-binary';

const ROTOR = join(import.meta.dirname, '../../bin/rotor-dev.mjs');

const FAKE_GO = `#!/bin/sh
# fake-go: stands in for "go install" of the Temporal server and its SQL tool.
echo "$*" >> "$FAKE_GO_CALLS"
while [ ! -e "$FAKE_GO_RELEASE" ]; do sleep 0.2; done
for bin in server sql; do printf '#!/bin/sh\\necho fake\\n' > "$GOBIN/$bin"; chmod +x "$GOBIN/$bin"; done
`;

let dir: string;
let fakeGo: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'rotor-temporal-build-'));
  fakeGo = join(dir, 'fake-go');
  writeFileSync(fakeGo, FAKE_GO);
  chmodSync(fakeGo, 0o755);
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function buildEnv(name: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ROTOR_CACHE_DIR: join(dir, name, 'cache'),
    GO_BINARY: fakeGo,
    FAKE_GO_CALLS: join(dir, name, 'calls'),
    FAKE_GO_RELEASE: join(dir, name, 'release'),
  };
  delete env.TEMPORAL_SERVER_DIR;
  return env;
}

function calls(env: NodeJS.ProcessEnv): string[] {
  const file = env.FAKE_GO_CALLS!;
  return existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n') : [];
}

interface Run {
  env: NodeJS.ProcessEnv;
  child: ChildProcess;
  stdout: string;
  stderr: string;
  exit: Promise<number | null>;
}

function ensureServer(env: NodeJS.ProcessEnv): Run {
  const child = spawn('node', [ROTOR, 'temporal', 'ensure-server'], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const run: Run = { env, child, stdout: '', stderr: '', exit: Promise.resolve(null) };
  child.stdout!.on('data', (d) => {
    run.stdout += d;
  });
  child.stderr!.on('data', (d) => {
    run.stderr += d;
  });
  run.exit = new Promise((resolve) => child.on('close', (code) => resolve(code)));
  return run;
}

async function until(what: string, probe: () => boolean, runs: Run[]): Promise<void> {
  while (!probe()) {
    for (const r of runs) {
      if (r.child.exitCode !== null) throw new Error(`a process exited before ${what}: ${r.stderr}`);
    }
    if (calls(runs[0]!.env).length > 1) throw new Error(`a second build started before ${what}`);
    await sleep(200);
  }
}

describe('the Temporal server build (machine-wide cache)', () => {
  it('two processes that find the cache empty build it once: the second waits, then uses the first one’s binaries', async () => {
    const env = buildEnv('parallel');
    mkdirSync(join(dir, 'parallel'), { recursive: true });
    const runs = [ensureServer(env), ensureServer(env)];
    try {
      await until('the build started', () => calls(env).length > 0, runs);
      await until(
        'the other process waited',
        () => runs.some((r) => /waiting for another process/.test(r.stderr)),
        runs,
      );
      writeFileSync(env.FAKE_GO_RELEASE!, '');
      const codes = await Promise.all(runs.map((r) => r.exit));
      expect(codes).toEqual([0, 0]);
    } finally {
      writeFileSync(env.FAKE_GO_RELEASE!, '');
      for (const r of runs) if (r.child.exitCode === null) r.child.kill('SIGKILL');
    }
    const cache = temporalServerCacheDir(temporalTools(env));
    expect(calls(env)).toHaveLength(1);
    expect(calls(env)[0]).toMatch(
      /^install go\.temporal\.io\/server\/cmd\/server@v1\.29\.1 .*cmd\/tools\/sql@v1\.29\.1$/,
    );
    for (const r of runs) expect(r.stdout.trim()).toBe(join(cache, 'server'));
    expect(runs.filter((r) => /building the Temporal server/.test(r.stderr))).toHaveLength(1);
    // The binaries were renamed in from the builder's own staging folder; nothing else is left.
    expect(readdirSync(join(cache, '..')).sort()).toEqual(['temporal-server-v1.29.1']);
    expect(readdirSync(cache).sort()).toEqual(['server', 'sql']);
  });

  it('a lock left by a builder that no longer runs is taken over', async () => {
    const env = buildEnv('stale');
    mkdirSync(join(dir, 'stale'), { recursive: true });
    const cache = temporalServerCacheDir(temporalTools(env));
    mkdirSync(cache, { recursive: true });
    // A pid that ran and has exited: the builder that was killed holding the lock.
    const gone = spawnSync('sh', ['-c', 'echo $$'], { encoding: 'utf8' }).stdout.trim();
    writeFileSync(`${cache}.lock`, `${gone}\n`);
    writeFileSync(env.FAKE_GO_RELEASE!, '');
    const lines: string[] = [];
    const found = await ensureTemporalServer(temporalTools(env), (l) => lines.push(l));
    expect(found.source).toBe('built');
    expect(found.server).toBe(join(cache, 'server'));
    expect(lines.some((l) => l.includes(`stale build lock`) && l.includes(`pid ${gone}`))).toBe(true);
    expect(existsSync(`${cache}.lock`)).toBe(false);
    expect(calls(env)).toHaveLength(1);
    // Found in the cache from now on, without Go.
    expect(
      (await ensureTemporalServer(temporalTools({ ...env, GO_BINARY: join(dir, 'no-go') }))).source,
    ).toBe('cache');
  });
});
