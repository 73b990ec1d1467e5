import { randomBytes } from 'node:crypto';
import { inject } from 'vitest';
import type { Pkcs11Config } from '../../src/config';

export function uniqueLabel(prefix = 'test'): string {
  return `${prefix}-${randomBytes(5).toString('hex')}`;
}

/** The run's SoftHSM token as a custodian configuration. */
export function tokenConfig(overrides: Partial<Pkcs11Config> = {}): Pkcs11Config {
  const t = inject('softhsm');
  return { modulePath: t.modulePath!, tokenLabel: t.label!, pin: t.pin!, sessions: 2, ...overrides };
}

/** The run's SoftHSM token as the environment `openCustodian('pkcs11')` and the CLI read. */
export function tokenEnv(): Record<string, string> {
  const t = inject('softhsm');
  return {
    SOFTHSM2_CONF: t.confPath!,
    ROTOR_PKCS11_MODULE: t.modulePath!,
    ROTOR_PKCS11_TOKEN_LABEL: t.label!,
    ROTOR_PKCS11_PIN: t.pin!,
  };
}

/** Everything written to stdout, stderr and the console while `fn` runs (passed through unless `quiet`). */
export async function captureOutput<T>(
  fn: () => Promise<T>,
  { quiet = false } = {},
): Promise<{ result: T | undefined; error: unknown; text: string; stdout: string }> {
  const stdoutChunks: string[] = [];
  const chunks: string[] = [];
  const out = process.stdout.write.bind(process.stdout);
  const err = process.stderr.write.bind(process.stderr);
  const consoleMethods = ['log', 'info', 'warn', 'error', 'debug'] as const;
  const saved = consoleMethods.map((m) => console[m]);
  const record = (chunk: unknown) => {
    chunks.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString('utf8'));
  };
  process.stdout.write = ((chunk: unknown, ...rest: unknown[]) => {
    record(chunk);
    stdoutChunks.push(chunks.at(-1)!);
    return quiet || out(chunk as string, ...(rest as []));
  }) as typeof process.stdout.write;
  process.stderr.write = ((chunk: unknown, ...rest: unknown[]) => {
    record(chunk);
    return quiet || err(chunk as string, ...(rest as []));
  }) as typeof process.stderr.write;
  for (const m of consoleMethods)
    console[m] = (...args: unknown[]) => record(`${args.map(String).join(' ')}\n`);
  try {
    const result = await fn();
    return { result, error: undefined, text: chunks.join(''), stdout: stdoutChunks.join('') };
  } catch (error) {
    return { result: undefined, error, text: chunks.join(''), stdout: stdoutChunks.join('') };
  } finally {
    process.stdout.write = out;
    process.stderr.write = err;
    consoleMethods.forEach((m, i) => {
      console[m] = saved[i]!;
    });
  }
}
