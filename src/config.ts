/**
 * Configuration from the environment, in one place, so the README's table and the code agree.
 * Every value has a default that works on a developer machine; secrets have none.
 */
import { readFileSync } from 'node:fs';
import { UsageError } from './errors';
import { LOG_LEVELS, type RotorLogLevel } from './log';

export const DEFAULT_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/postgres';
export const DEFAULT_SOFTHSM_MODULE = '/usr/lib/softhsm/libsofthsm2.so';

type Env = Record<string, string | undefined>;

export function databaseUrl(env: Env = process.env): string {
  return env.DATABASE_URL || DEFAULT_DATABASE_URL;
}

export interface TemporalConfig {
  address: string;
  namespace: string;
  taskQueue: string;
}

export function temporalConfig(env: Env = process.env): TemporalConfig {
  return {
    address: env.TEMPORAL_ADDRESS || '127.0.0.1:7233',
    namespace: env.TEMPORAL_NAMESPACE || 'default',
    taskQueue: env.ROTOR_TASK_QUEUE || 'rotor',
  };
}

export interface Pkcs11Config {
  modulePath: string;
  tokenLabel: string;
  /** Never logged, never put in an error message. */
  pin: string;
  sessions: number;
}

/**
 * PKCS#11 settings. The PIN comes from ROTOR_PKCS11_PIN or the file named by ROTOR_PKCS11_PIN_FILE,
 * never from a command-line argument (it would show in `ps`).
 */
export function pkcs11Config(env: Env = process.env): Pkcs11Config {
  const tokenLabel = env.ROTOR_PKCS11_TOKEN_LABEL;
  if (!tokenLabel)
    throw new UsageError('ROTOR_PKCS11_TOKEN_LABEL is not set: name the PKCS#11 token rotor uses');
  let pin = env.ROTOR_PKCS11_PIN;
  if (!pin && env.ROTOR_PKCS11_PIN_FILE) {
    try {
      pin = readFileSync(env.ROTOR_PKCS11_PIN_FILE, 'utf8').trim();
    } catch {
      throw new UsageError(`ROTOR_PKCS11_PIN_FILE (${env.ROTOR_PKCS11_PIN_FILE}) cannot be read`);
    }
  }
  if (!pin) throw new UsageError('no PKCS#11 PIN: set ROTOR_PKCS11_PIN or ROTOR_PKCS11_PIN_FILE');
  return {
    modulePath: env.ROTOR_PKCS11_MODULE || DEFAULT_SOFTHSM_MODULE,
    tokenLabel,
    pin,
    sessions: positiveInt(env.ROTOR_PKCS11_SESSIONS, 'ROTOR_PKCS11_SESSIONS', 4),
  };
}

export function positiveInt(value: string | undefined, name: string, fallback: number): number {
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0)
    throw new UsageError(`${name} must be a positive integer, got '${value}'`);
  return n;
}

/** ROTOR_LOG_LEVEL: the structured log's threshold (src/log.ts), default `info`. */
export function logLevel(env: Env = process.env): RotorLogLevel {
  const value = env.ROTOR_LOG_LEVEL;
  if (value === undefined || value === '') return 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(value))
    throw new UsageError(`ROTOR_LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}, got '${value}'`);
  return value as RotorLogLevel;
}
