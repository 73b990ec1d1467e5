/**
 * A real `rotor serve` process (bin/rotor-dev.mjs) on a free port over a test database: what
 * verifiers talk to in production, started the way an operator starts it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const ROTOR = fileURLToPath(new URL('../../bin/rotor-dev.mjs', import.meta.url));

export interface RotorServe {
  baseUrl: string;
  process: ChildProcess;
  stop(): Promise<void>;
}

export async function startRotorServe(
  databaseUrl: string,
  env: Record<string, string> = {},
  nodeFlags: string[] = [],
): Promise<RotorServe> {
  const child = spawn(process.execPath, [...nodeFlags, ROTOR, 'serve'], {
    env: { ...process.env, DATABASE_URL: databaseUrl, ROTOR_HTTP_PORT: '0', ROTOR_METRICS_PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  };
  try {
    const first = await new Promise<string>((resolve, reject) => {
      createInterface({ input: child.stdout! }).once('line', resolve);
      child.once('exit', (code) => reject(new Error(`rotor serve exited with ${code}`)));
    });
    const baseUrl = (JSON.parse(first) as { listening: string }).listening;
    return { baseUrl, process: child, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
