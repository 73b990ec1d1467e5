import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { temporalTools } from '../../src/config';
import { EnvironmentError } from '../../src/errors';
import { createSoftHsmToken, softHsmAvailability } from '../../src/hsm/softhsm-token';
import { findTemporalCli } from '../../src/temporal/cli-binary';

const run = promisify(execFile);
const ROTOR = join(import.meta.dirname, '../../bin/rotor-dev.mjs');

async function rotor(args: string[], env: Record<string, string> = {}) {
  try {
    const { stdout, stderr } = await run('node', [ROTOR, ...args], { env: { ...process.env, ...env } });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('a bad environment gets one line naming the fix', () => {
  it('rotor --help works', async () => {
    const r = await rotor(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Usage: rotor/);
  });

  it('DATABASE_URL unreachable: exit 3, one line, no stack', async () => {
    const r = await rotor(['db', 'migrate'], { DATABASE_URL: 'postgres://postgres@127.0.0.1:1/nowhere' });
    expect(r.code).toBe(3);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(
      /cannot reach Postgres at postgres:\/\/postgres@127\.0\.0\.1:1\/nowhere .*set DATABASE_URL/,
    );
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('an unknown command is bad usage: exit 2', async () => {
    const r = await rotor(['no-such-command']);
    expect(r.code).toBe(2);
  });

  it('TEMPORAL_CLI pointing nowhere is named', () => {
    expect(() => findTemporalCli(temporalTools({ TEMPORAL_CLI: '/nonexistent/temporal', PATH: '' }))).toThrow(
      EnvironmentError,
    );
    expect(() => findTemporalCli(temporalTools({ TEMPORAL_CLI: '/nonexistent/temporal', PATH: '' }))).toThrow(
      /TEMPORAL_CLI=\/nonexistent\/temporal is not an executable file/,
    );
  });

  it('no temporal CLI and no Go: one line saying what to install', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'rotor-nopath-'));
    const r = await rotor(['temporal', 'ensure-cli'], {
      PATH: join(process.execPath, '..'),
      ROTOR_CACHE_DIR: empty,
      TEMPORAL_CLI: '',
      GO_BINARY: join(empty, 'no-go-here'),
    });
    expect(r.code).toBe(3);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/no temporal CLI found and no Go toolchain to build one: install Go/);
  });

  it('softhsm2 missing: the module path is named with the package to install', async () => {
    const a = await softHsmAvailability('/nonexistent/libsofthsm2.so');
    expect(a.available).toBe(false);
    expect(a.reason).toBe(
      'SoftHSM2 PKCS#11 module not found at /nonexistent/libsofthsm2.so: apt-get install softhsm2',
    );
    await expect(createSoftHsmToken({ modulePath: '/nonexistent/libsofthsm2.so' })).rejects.toThrow(
      EnvironmentError,
    );
  });

  it('a cached Temporal CLI is found without building', () => {
    const cache = mkdtempSync(join(tmpdir(), 'rotor-cache-'));
    const dir = join(cache, 'temporal-v1.5.1');
    mkdirSync(dir);
    writeFileSync(join(dir, 'temporal'), '#!/bin/sh\n', { mode: 0o755 });
    expect(findTemporalCli(temporalTools({ PATH: '', ROTOR_CACHE_DIR: cache }))).toEqual({
      path: join(dir, 'temporal'),
      source: 'cache',
    });
  });
});
