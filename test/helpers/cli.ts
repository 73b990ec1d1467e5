/**
 * The `rotor` command line as a test runs it: the dev entry point (bin/rotor-dev.mjs, TypeScript
 * through tsx) in a child process, with this process's environment plus `env`. Resolves with the
 * exit code and both streams whatever the outcome, so a test can assert a refusal.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const ROTOR_DEV = fileURLToPath(new URL('../../bin/rotor-dev.mjs', import.meta.url));

export interface RotorRun {
  code: number;
  stdout: string;
  stderr: string;
}

export function runRotor(args: string[], env: Record<string, string> = {}): Promise<RotorRun> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [ROTOR_DEV, ...args],
      { env: { ...process.env, ...env } },
      (err, stdout, stderr) => {
        resolve({ code: err ? Number((err as { code?: unknown }).code ?? 1) : 0, stdout, stderr });
      },
    );
  });
}
