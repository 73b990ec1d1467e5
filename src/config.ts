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

export interface TemporalTls {
  /** PEM of the CA that signed the frontend's certificate; the system's CAs when absent. */
  serverRootCACertificate?: Buffer;
  /** mTLS: this client's certificate chain and key (PEM). */
  clientCertPair?: { crt: Buffer; key: Buffer };
  serverNameOverride?: string;
}

export interface TemporalConfig {
  address: string;
  namespace: string;
  taskQueue: string;
  /** Set when the frontend is reached over TLS (any TEMPORAL_TLS_* variable, or an API key). */
  tls?: TemporalTls;
  /** Sent as the bearer credential of every call (Temporal Cloud's API keys). Never logged. */
  apiKey?: string;
}

function pemFileVar(env: Env, name: string): Buffer | undefined {
  const path = env[name];
  if (!path) return undefined;
  try {
    return readFileSync(path);
  } catch (err) {
    throw new UsageError(
      `${name} (${path}) cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
    );
  }
}

/**
 * Where and how the worker and the CLI reach Temporal, with the variables Temporal's samples use:
 * TEMPORAL_TLS_CA, TEMPORAL_TLS_CERT + TEMPORAL_TLS_KEY (mTLS), TEMPORAL_TLS_SERVER_NAME,
 * TEMPORAL_TLS=true (TLS with the system's CAs) and TEMPORAL_API_KEY (implies TLS).
 */
export function temporalConfig(env: Env = process.env): TemporalConfig {
  const ca = pemFileVar(env, 'TEMPORAL_TLS_CA');
  const crt = pemFileVar(env, 'TEMPORAL_TLS_CERT');
  const key = pemFileVar(env, 'TEMPORAL_TLS_KEY');
  if ((crt === undefined) !== (key === undefined)) {
    throw new UsageError('set both TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY (mTLS), or neither');
  }
  const flag = env.TEMPORAL_TLS;
  if (flag !== undefined && flag !== '' && flag !== 'true' && flag !== 'false') {
    throw new UsageError(`TEMPORAL_TLS must be true or false, got '${flag.slice(0, 20)}'`);
  }
  const apiKey = env.TEMPORAL_API_KEY || undefined;
  const serverName = env.TEMPORAL_TLS_SERVER_NAME || undefined;
  const wantTls =
    flag === 'true' ||
    ca !== undefined ||
    crt !== undefined ||
    serverName !== undefined ||
    apiKey !== undefined;
  if (flag === 'false' && wantTls) {
    throw new UsageError('TEMPORAL_TLS=false contradicts the TEMPORAL_TLS_* / TEMPORAL_API_KEY settings');
  }
  return {
    address: env.TEMPORAL_ADDRESS || '127.0.0.1:7233',
    namespace: env.TEMPORAL_NAMESPACE || 'default',
    taskQueue: env.ROTOR_TASK_QUEUE || 'rotor',
    ...(wantTls
      ? {
          tls: {
            ...(ca ? { serverRootCACertificate: ca } : {}),
            ...(crt && key ? { clientCertPair: { crt, key } } : {}),
            ...(serverName ? { serverNameOverride: serverName } : {}),
          },
        }
      : {}),
    ...(apiKey ? { apiKey } : {}),
  };
}

/** The connection options of `config` for @temporalio/client and NativeConnection alike. */
export function temporalConnectionOptions(config: TemporalConfig): {
  address: string;
  tls?: TemporalTls;
  apiKey?: string;
} {
  return {
    address: config.address,
    ...(config.tls ? { tls: config.tls } : {}),
    ...(config.apiKey ? { apiKey: config.apiKey } : {}),
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
