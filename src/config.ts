/**
 * rotor's configuration: every environment variable rotor reads, its default and its validation,
 * in this one module (issue 16, "One configuration"). `ENV_VARIABLES` is the list;
 * docs/CONFIGURATION.md is its table (test/foundation/configuration.test.ts keeps the two equal,
 * and fails when a module other than this one reads `process.env`).
 *
 * An entry point (the CLI, the worker, `rotor serve`, the demo, a benchmark) calls `loadConfig()`
 * once and hands the parts down: modules take what they need as parameters and never read the
 * environment themselves. A section is parsed the first time it is used and then kept (frozen),
 * so a bad value is one line naming the variable and what was wrong, raised where that section is
 * needed: `rotor manifests import` does not fail on a bad `ROTOR_HTTP_PORT`, `rotor serve` does
 * at start. Secrets (PINs, tokens, API keys, passwords) have no default and never appear in a
 * message.
 */
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { CUSTODIAN_KINDS, type CustodianKind, IDENTITY_NAME } from './domain';
import { UsageError } from './errors';
import { LOG_LEVELS, type RotorLogLevel } from './log';

export const DEFAULT_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/postgres';
export const DEFAULT_SOFTHSM_MODULE = '/usr/lib/softhsm/libsofthsm2.so';
export const DEFAULT_SOFTWARE_KEY_DIR = './.rotor/keys';
/** An anchor is valid this long after it is issued unless configured otherwise (issue 12: 7 days). */
export const DEFAULT_ANCHOR_LIFETIME_SECONDS = 7 * 24 * 3600;
export const DEFAULT_ANCHOR_MAX_AGE_SECONDS = 300;
/** How long a signed CRL header may be relied on after it is issued unless configured (1 hour). */
export const DEFAULT_CRL_META_LIFETIME_SECONDS = 3600;

/** One variable: its name, its default as documented (`—`: none), and what it sets. */
export interface EnvVariable {
  readonly name: string;
  readonly default: string;
  readonly meaning: string;
  /** Set when not rotor but a library it loads reads the variable (rotor passes it nowhere). */
  readonly readBy?: string;
}

/**
 * Every variable rotor reads, in the order of docs/CONFIGURATION.md. Reads go through `get()`,
 * whose name parameter is this list's names, so a variable cannot be read without being listed.
 */
export const ENV_VARIABLES = [
  // Stores and logs
  {
    name: 'DATABASE_URL',
    default: `\`${DEFAULT_DATABASE_URL}\``,
    meaning: 'Postgres for the stores (the demo starts an embedded PostgreSQL when it is unset)',
  },
  {
    name: 'ROTOR_LOG_LEVEL',
    default: '`info`',
    meaning:
      "threshold of the structured log (`trace`, `debug`, `info`, `warn`, `error`, `fatal`, `silent`): JSON lines on stderr from the worker; `rotor serve`'s access log and the CLI's lines are human text unless `rotor --log-json`",
  },
  {
    name: 'ROTOR_DEBUG',
    default: '—',
    meaning: 'any value: the CLI also prints the stack of an unexpected error',
  },
  // Temporal
  { name: 'TEMPORAL_ADDRESS', default: '`127.0.0.1:7233`', meaning: 'Temporal frontend' },
  { name: 'TEMPORAL_NAMESPACE', default: '`default`', meaning: 'Temporal namespace' },
  { name: 'ROTOR_TASK_QUEUE', default: '`rotor`', meaning: 'task queue of the worker' },
  {
    name: 'TEMPORAL_TLS',
    default: '—',
    meaning:
      "`true`: reach the frontend over TLS with the system's CAs; `false` refuses any other TEMPORAL_TLS_* setting",
  },
  {
    name: 'TEMPORAL_TLS_CA',
    default: '—',
    meaning: "PEM of the CA that signed Temporal's frontend certificate (turns TLS on)",
  },
  {
    name: 'TEMPORAL_TLS_CERT',
    default: '—',
    meaning: "the worker's and the CLI's client certificate (mTLS), with TEMPORAL_TLS_KEY: both or neither",
  },
  { name: 'TEMPORAL_TLS_KEY', default: '—', meaning: 'the private key of TEMPORAL_TLS_CERT' },
  {
    name: 'TEMPORAL_TLS_SERVER_NAME',
    default: '—',
    meaning: "the name to check the frontend's certificate against, when it differs from the address",
  },
  {
    name: 'TEMPORAL_API_KEY',
    default: '—',
    meaning: 'sent as the bearer credential of every Temporal call (implies TLS); never logged',
  },
  // Temporal binaries (tests, the demo, `rotor temporal ...`)
  {
    name: 'TEMPORAL_CLI',
    default: '—',
    meaning:
      'path of the `temporal` binary (tests, demo); else `temporal` on `PATH`, else the cache, else built with Go',
  },
  {
    name: 'TEMPORAL_SERVER_DIR',
    default: '—',
    meaning:
      "folder holding the Temporal server's `server` and `sql` binaries (the Postgres-backed test server); else the cache, else built with Go",
  },
  {
    name: 'ROTOR_CACHE_DIR',
    default: '`$XDG_CACHE_HOME/rotor`',
    meaning: 'where built Temporal binaries are cached, machine-wide',
  },
  { name: 'XDG_CACHE_HOME', default: '`~/.cache`', meaning: 'the base of the default ROTOR_CACHE_DIR' },
  {
    name: 'GO_BINARY',
    default: '`go` on `PATH`, then `/usr/local/go/bin/go`',
    meaning: 'Go toolchain used to build the Temporal binaries',
  },
  { name: 'GOFLAGS', default: '`-mod=mod`', meaning: 'passed to that Go build' },
  { name: 'PATH', default: '—', meaning: 'searched for `temporal` and `go`' },
  // Custody
  {
    name: 'ROTOR_CUSTODIAN',
    default: '`software`',
    meaning: 'custodian of new keys: `pkcs11` or `software` (demo and development only)',
  },
  {
    name: 'ROTOR_SOFTWARE_KEY_DIR',
    default: `\`${DEFAULT_SOFTWARE_KEY_DIR}\``,
    meaning: "the software custodian's seed files (0600)",
  },
  { name: 'ROTOR_PKCS11_MODULE', default: `\`${DEFAULT_SOFTHSM_MODULE}\``, meaning: 'PKCS#11 module' },
  {
    name: 'ROTOR_PKCS11_TOKEN_LABEL',
    default: '—',
    meaning: 'token holding the keys (required by the PKCS#11 custodian)',
  },
  {
    name: 'ROTOR_PKCS11_PIN',
    default: '—',
    meaning: 'user PIN of that token; never a command-line argument',
  },
  {
    name: 'ROTOR_PKCS11_PIN_FILE',
    default: '—',
    meaning: 'a file holding the user PIN (a docker secret), when ROTOR_PKCS11_PIN is unset',
  },
  {
    name: 'ROTOR_PKCS11_SESSIONS',
    default: '`4`',
    meaning: 'pooled PKCS#11 sessions (concurrent HSM signers)',
  },
  {
    name: 'SOFTHSM2_CONF',
    default: '—',
    meaning:
      "SoftHSM2's configuration file. Read by the SoftHSM2 library itself at C_Initialize, never set by rotor: set it in the process's environment before rotor starts",
    readBy: 'SoftHSM2',
  },
  // The worker's activities
  {
    name: 'ROTOR_SIGN_THREADS',
    default: 'the number of cores',
    meaning:
      "the worker's threads that verify originals and sign twins during re-sign (`0`: on the activity's own thread); a software key is cloned to them, an HSM key stays with its custodian",
  },
  {
    name: 'ROTOR_REVOKED_BY',
    default: '`urn:rotor:key-rotation`',
    meaning: '`revoked_by` of the revocation records rotor signs',
  },
  {
    name: 'ROTOR_PUBLIC_URL',
    default: '—',
    meaning: "base URL of `rotor serve`, checked by the rotation's preflight",
  },
  { name: 'ROTOR_ONCALL_WEBHOOK', default: '—', meaning: 'Slack-compatible webhook for on-call notices' },
  {
    name: 'ROTOR_CRL_FILE',
    default: '—',
    meaning:
      "also write the CRL to this file (atomically) for static hosting, with `ROTOR_IDENTITY`'s signed CRL header beside it (`<file>.meta.jws`)",
  },
  {
    name: 'ROTOR_ANCHOR_LIFETIME_SECONDS',
    default: `\`${DEFAULT_ANCHOR_LIFETIME_SECONDS}\` (7 days)`,
    meaning: 'how long a signed anchor stays valid after it is issued (`expires_at`); at least 60',
  },
  {
    name: 'ROTOR_CRL_META_LIFETIME_SECONDS',
    default: `\`${DEFAULT_CRL_META_LIFETIME_SECONDS}\` (1 hour)`,
    meaning:
      'the worker (and `rotor key init`, `rotor crl compact`): how long a signed CRL header holds after it is issued (`next_update`), at least 60; the anchor upkeep schedule must look at least twice per lifetime',
  },
  {
    name: 'ROTOR_FAILPOINT',
    default: '—',
    meaning:
      'tests only: `<activity>:<point>:stop` or `:sleep=<ms>` stops or delays the worker at a named point (src/activities/failpoint.ts)',
  },
  // rotor serve
  { name: 'ROTOR_HTTP_HOST', default: '`127.0.0.1`', meaning: '`rotor serve`: address to bind' },
  {
    name: 'ROTOR_HTTP_PORT',
    default: '`8080`',
    meaning: '`rotor serve`: port to bind (`0` picks a free one, printed on stdout)',
  },
  {
    name: 'ROTOR_HTTP_TLS_CERT',
    default: '—',
    meaning: 'PEM file: `rotor serve` answers HTTPS (with ROTOR_HTTP_TLS_KEY: both or neither)',
  },
  { name: 'ROTOR_HTTP_TLS_KEY', default: '—', meaning: 'the private key of ROTOR_HTTP_TLS_CERT (PEM file)' },
  {
    name: 'ROTOR_METRICS_HOST',
    default: '`127.0.0.1`',
    meaning: "`rotor serve`'s `/metrics` (and `/healthz`) listener, never the public one",
  },
  { name: 'ROTOR_METRICS_PORT', default: '`9464`', meaning: 'the port of that listener' },
  {
    name: 'ROTOR_IDENTITY',
    default: '`default`',
    meaning:
      "signing identity whose anchor `rotor serve` publishes and whose signed CRL header goes beside `ROTOR_CRL_FILE`; also `rotor verifier run`'s identity when `--identity` is not given",
  },
  {
    name: 'ROTOR_ANCHOR_MAX_AGE',
    default: `\`${DEFAULT_ANCHOR_MAX_AGE_SECONDS}\``,
    meaning:
      '`Cache-Control: max-age` of the trust anchor, seconds; a rotation started by `rotor rotate start` waits it out after publishing unless `--policy-json` says otherwise',
  },
  {
    name: 'ROTOR_CRL_MAX_AGE',
    default: '`30`',
    meaning: '`Cache-Control: max-age` of the CRL and of single revocation records, seconds',
  },
  {
    name: 'ROTOR_MANIFEST_MAX_AGE',
    default: '`60`',
    meaning:
      "`Cache-Control: max-age` of an agent's manifest at `/v1/agents/{agent_id}/manifest`; set the rotation policy's `deliveryMaxAgeSeconds` to match",
  },
  {
    name: 'ROTOR_CRL_MAX_STREAMS',
    default: '`8`',
    meaning:
      'CRL streams `rotor serve` runs at once, each on a connection of a pool of its own; one more is answered 429 with `Retry-After`',
  },
  {
    name: 'ROTOR_CRL_STALL_SECONDS',
    default: '`15`',
    meaning: 'a CRL reader that takes nothing for this long is cut off',
  },
  {
    name: 'ROTOR_RESULTS_BUCKET_SECONDS',
    default: '`5`',
    meaning:
      "width of the time buckets `rotor serve` counts check-in results in (the page's chart, the analysis gate)",
  },
  {
    name: 'ROTOR_PAGE_TOKEN',
    default: '—',
    meaning:
      'token of the live rotation page `/rotations/{identity}` (Bearer, or HTTP Basic with the token as password); unset: the page answers 503',
  },
  {
    name: 'ROTOR_CHECKIN_TOKEN',
    default: '—',
    meaning:
      'the shared fleet token, accepted this release only and only from verifiers that are not registered (each such check-in logs a warning); registered verifiers use their own credential',
  },
  // Other commands
  {
    name: 'ROTOR_VERIFIER_CREDENTIAL',
    default: '—',
    meaning:
      "`rotor verifier run`: this verifier's own check-in credential, from `rotor verifier register` (else ROTOR_CHECKIN_TOKEN)",
  },
  {
    name: 'ROTOR_WORKER_DB_PASSWORD',
    default: '—',
    meaning:
      '`rotor db migrate` sets it as the password of the least-privilege login role `rotor_worker` (migration 085)',
  },
  {
    name: 'ROTOR_SERVE_DB_PASSWORD',
    default: '—',
    meaning: '`rotor db migrate` sets it as the password of the login role `rotor_serve` (migration 085)',
  },
  {
    name: 'USER',
    default: '—',
    meaning:
      "`rotor rotate start --requested-by` and the control commands' `--by` when not given (else LOGNAME, else `unknown`)",
  },
  { name: 'LOGNAME', default: '—', meaning: 'the same, when USER is unset' },
  {
    name: 'ROTOR_DEMO_FAIL_AT',
    default: '—',
    meaning:
      'tests only: `rotor demo` fails at this start-up stage (src/demo/run-demo.ts, `DEMO_STAGES`) to show it stops all it started',
  },
] as const satisfies readonly EnvVariable[];

export type EnvName = (typeof ENV_VARIABLES)[number]['name'];
type Env = Readonly<Record<string, string | undefined>>;

/** A variable's value; an empty value is the same as unset. */
function get(env: Env, name: EnvName): string | undefined {
  const value = env[name];
  return value === undefined || value === '' ? undefined : value;
}

export function positiveInt(value: string | undefined, name: string, fallback: number): number {
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0)
    throw new UsageError(`${name} must be a positive integer, got '${value}'`);
  return n;
}

function port(env: Env, name: EnvName, fallback: number): number {
  const value = get(env, name);
  const n = value === undefined ? fallback : Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) {
    throw new UsageError(`${name} must be a port number (0 to 65535), got '${value}'`);
  }
  return n;
}

function readable(env: Env, name: EnvName): Buffer | undefined {
  const path = get(env, name);
  if (!path) return undefined;
  try {
    return readFileSync(path);
  } catch (err) {
    throw new UsageError(
      `${name} (${path}) cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
    );
  }
}

export function databaseUrl(env: Env): string {
  return get(env, 'DATABASE_URL') ?? DEFAULT_DATABASE_URL;
}

/** ROTOR_LOG_LEVEL: the structured log's threshold (src/log.ts), default `info`. */
export function logLevel(env: Env): RotorLogLevel {
  const value = get(env, 'ROTOR_LOG_LEVEL');
  if (value === undefined) return 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(value))
    throw new UsageError(`ROTOR_LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}, got '${value}'`);
  return value as RotorLogLevel;
}

// ---------------------------------------------------------------- Temporal

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

/**
 * Where and how the worker and the CLI reach Temporal, with the variables Temporal's samples use
 * (their names are Temporal's, not rotor's): TEMPORAL_TLS_CA, TEMPORAL_TLS_CERT + TEMPORAL_TLS_KEY
 * (mTLS), TEMPORAL_TLS_SERVER_NAME, TEMPORAL_TLS=true (TLS with the system's CAs) and
 * TEMPORAL_API_KEY (implies TLS).
 */
export function temporalConfig(env: Env): TemporalConfig {
  const ca = readable(env, 'TEMPORAL_TLS_CA');
  const crt = readable(env, 'TEMPORAL_TLS_CERT');
  const key = readable(env, 'TEMPORAL_TLS_KEY');
  if ((crt === undefined) !== (key === undefined)) {
    throw new UsageError('set both TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY (mTLS), or neither');
  }
  const flag = get(env, 'TEMPORAL_TLS');
  if (flag !== undefined && flag !== 'true' && flag !== 'false') {
    throw new UsageError(`TEMPORAL_TLS must be true or false, got '${flag.slice(0, 20)}'`);
  }
  const apiKey = get(env, 'TEMPORAL_API_KEY');
  const serverName = get(env, 'TEMPORAL_TLS_SERVER_NAME');
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
    address: get(env, 'TEMPORAL_ADDRESS') ?? '127.0.0.1:7233',
    namespace: get(env, 'TEMPORAL_NAMESPACE') ?? 'default',
    taskQueue: get(env, 'ROTOR_TASK_QUEUE') ?? 'rotor',
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

/**
 * Where the Temporal binaries come from: src/temporal/cli-binary.ts's `TemporalTools` (the
 * temporal layer does not import this module, so the shape is declared there): ROTOR_CACHE_DIR
 * (machine-wide, so fresh clones on one machine build Temporal once), TEMPORAL_CLI,
 * TEMPORAL_SERVER_DIR, GO_BINARY, PATH, and the environment a Go build runs with (this
 * process's, GOFLAGS defaulted to `-mod=mod`).
 */
export function temporalTools(env: Env) {
  const cacheDir =
    get(env, 'ROTOR_CACHE_DIR') ?? join(get(env, 'XDG_CACHE_HOME') ?? join(homedir(), '.cache'), 'rotor');
  const temporalCli = get(env, 'TEMPORAL_CLI');
  const temporalServerDir = get(env, 'TEMPORAL_SERVER_DIR');
  const goBinary = get(env, 'GO_BINARY');
  return {
    cacheDir,
    ...(temporalCli ? { temporalCli } : {}),
    ...(temporalServerDir ? { temporalServerDir } : {}),
    ...(goBinary ? { goBinary } : {}),
    searchPath: get(env, 'PATH') ?? '',
    buildEnv: { ...env, GOFLAGS: get(env, 'GOFLAGS') ?? '-mod=mod' },
  };
}

// ---------------------------------------------------------------- custody

export interface Pkcs11Config {
  modulePath: string;
  tokenLabel: string;
  /** Never logged, never put in an error message. */
  pin: string;
  sessions: number;
}

export interface CustodyConfig {
  /** ROTOR_CUSTODIAN: the custodian of new keys. */
  kind: CustodianKind;
  /** Absolute. */
  softwareKeyDir: string;
  /** The PKCS#11 custodian's settings; reading it throws when the token or the PIN is not configured. */
  readonly pkcs11: Pkcs11Config;
}

export function parseCustodianKind(value: string, source = 'custodian'): CustodianKind {
  if ((CUSTODIAN_KINDS as readonly string[]).includes(value)) return value as CustodianKind;
  throw new UsageError(
    `${source} must be one of ${CUSTODIAN_KINDS.join(', ')}, got '${value}'`,
    'CUSTODIAN_KIND',
  );
}

/**
 * PKCS#11 settings. The PIN comes from ROTOR_PKCS11_PIN or the file named by ROTOR_PKCS11_PIN_FILE,
 * never from a command-line argument (it would show in `ps`).
 */
export function pkcs11Config(env: Env): Pkcs11Config {
  const tokenLabel = get(env, 'ROTOR_PKCS11_TOKEN_LABEL');
  if (!tokenLabel)
    throw new UsageError('ROTOR_PKCS11_TOKEN_LABEL is not set: name the PKCS#11 token rotor uses');
  let pin = get(env, 'ROTOR_PKCS11_PIN');
  const pinFile = get(env, 'ROTOR_PKCS11_PIN_FILE');
  if (!pin && pinFile) {
    try {
      pin = readFileSync(pinFile, 'utf8').trim();
    } catch {
      throw new UsageError(`ROTOR_PKCS11_PIN_FILE (${pinFile}) cannot be read`);
    }
  }
  if (!pin) throw new UsageError('no PKCS#11 PIN: set ROTOR_PKCS11_PIN or ROTOR_PKCS11_PIN_FILE');
  return {
    modulePath: get(env, 'ROTOR_PKCS11_MODULE') ?? DEFAULT_SOFTHSM_MODULE,
    tokenLabel,
    pin,
    sessions: positiveInt(get(env, 'ROTOR_PKCS11_SESSIONS'), 'ROTOR_PKCS11_SESSIONS', 4),
  };
}

export function custodyConfig(env: Env): CustodyConfig {
  return section({
    kind: () => parseCustodianKind(get(env, 'ROTOR_CUSTODIAN') ?? 'software', 'ROTOR_CUSTODIAN'),
    softwareKeyDir: () => resolve(get(env, 'ROTOR_SOFTWARE_KEY_DIR') ?? DEFAULT_SOFTWARE_KEY_DIR),
    pkcs11: () => pkcs11Config(env),
  });
}

// ---------------------------------------------------------------- the worker

/** What the worker's activities are configured with (src/activities/deps.ts, `ActivitySettings`). */
export interface WorkerSettings {
  /** `revoked_by` of every revocation record rotor signs (a URI naming the security team). */
  revokedBy: string;
  /** The HTTP service's base URL: the preflight GETs its CRL endpoint. */
  publicUrl?: string;
  /** Where on-call notifications are POSTed (a Slack-compatible webhook); unset: logged only. */
  onCallWebhook?: string;
  /** Where the CRL is also written, atomically, for static hosting; unset: served from Postgres only. */
  crlFile?: string;
  /** Whose signed CRL header is written beside `crlFile` (ROTOR_IDENTITY, as `rotor serve` publishes). */
  crlFileIdentity?: string;
  /** How long a signed trust anchor stays valid after it is issued (default 7 days). */
  anchorLifetimeSeconds: number;
  /** How long a signed CRL header may be relied on after it is issued (default 1 hour). */
  crlMetaLifetimeSeconds: number;
  /** Threads of the re-sign pool (src/activities/sign-pool.ts); unset: one per core. */
  signThreads?: number;
}

export function anchorLifetimeSeconds(env: Env): number {
  const raw = get(env, 'ROTOR_ANCHOR_LIFETIME_SECONDS');
  if (raw === undefined) return DEFAULT_ANCHOR_LIFETIME_SECONDS;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 60) {
    throw new UsageError(
      `ROTOR_ANCHOR_LIFETIME_SECONDS must be a whole number of seconds >= 60, got '${raw}'`,
    );
  }
  return n;
}

export function crlMetaLifetimeSeconds(env: Env): number {
  const raw = get(env, 'ROTOR_CRL_META_LIFETIME_SECONDS');
  if (raw === undefined) return DEFAULT_CRL_META_LIFETIME_SECONDS;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 60) {
    throw new UsageError(
      `ROTOR_CRL_META_LIFETIME_SECONDS must be a whole number of seconds >= 60, got '${raw}'`,
    );
  }
  return n;
}

export function signThreads(env: Env): number | undefined {
  const raw = get(env, 'ROTOR_SIGN_THREADS');
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > 64)
    throw new UsageError(`ROTOR_SIGN_THREADS must be an integer from 0 to 64, got '${raw}'`);
  return n;
}

export function workerSettings(env: Env): WorkerSettings {
  const publicUrl = get(env, 'ROTOR_PUBLIC_URL');
  const onCallWebhook = get(env, 'ROTOR_ONCALL_WEBHOOK');
  const crlFile = get(env, 'ROTOR_CRL_FILE');
  const threads = signThreads(env);
  return {
    revokedBy: get(env, 'ROTOR_REVOKED_BY') ?? 'urn:rotor:key-rotation',
    ...(publicUrl ? { publicUrl } : {}),
    ...(onCallWebhook ? { onCallWebhook } : {}),
    ...(crlFile ? { crlFile, crlFileIdentity: servedIdentity(env) } : {}),
    anchorLifetimeSeconds: anchorLifetimeSeconds(env),
    crlMetaLifetimeSeconds: crlMetaLifetimeSeconds(env),
    ...(threads !== undefined ? { signThreads: threads } : {}),
  };
}

// ---------------------------------------------------------------- rotor serve

export interface ServeConfig {
  host: string;
  port: number;
  anchorMaxAgeSeconds: number;
  checkInToken: string | undefined;
  identity: string;
  manifestMaxAgeSeconds: number;
  /** Cache-Control max-age of the CRL (the runbook's 30 s; the zero-downtime harness compresses it). */
  crlCacheSeconds: number;
  pageToken: string | undefined;
  metricsHost: string;
  metricsPort: number;
  tls: { cert: string; key: string } | undefined;
  maxCrlStreams: number;
  crlStallSeconds: number;
  resultsBucketSeconds: number;
}

/** ROTOR_ANCHOR_MAX_AGE when it is set (the one parse `rotor serve` and `rotor rotate start` share). */
export function anchorMaxAgeSeconds(env: Env): number | undefined {
  const raw = get(env, 'ROTOR_ANCHOR_MAX_AGE');
  return raw === undefined
    ? undefined
    : positiveInt(raw, 'ROTOR_ANCHOR_MAX_AGE', DEFAULT_ANCHOR_MAX_AGE_SECONDS);
}

/** ROTOR_IDENTITY: the identity `rotor serve` publishes (and whose CRL header goes beside ROTOR_CRL_FILE). */
function servedIdentity(env: Env): string {
  const identity = get(env, 'ROTOR_IDENTITY') ?? 'default';
  if (!IDENTITY_NAME.test(identity)) {
    throw new UsageError(
      `ROTOR_IDENTITY must be a name of letters, digits, . _ - (got '${identity.slice(0, 70)}')`,
    );
  }
  return identity;
}

export function serveConfig(env: Env): ServeConfig {
  const certPath = get(env, 'ROTOR_HTTP_TLS_CERT');
  const keyPath = get(env, 'ROTOR_HTTP_TLS_KEY');
  if ((certPath === undefined) !== (keyPath === undefined)) {
    throw new UsageError('set both ROTOR_HTTP_TLS_CERT and ROTOR_HTTP_TLS_KEY (PEM files), or neither');
  }
  const identity = servedIdentity(env);
  const cert = readable(env, 'ROTOR_HTTP_TLS_CERT');
  const key = readable(env, 'ROTOR_HTTP_TLS_KEY');
  return {
    host: get(env, 'ROTOR_HTTP_HOST') ?? '127.0.0.1',
    port: port(env, 'ROTOR_HTTP_PORT', 8080),
    anchorMaxAgeSeconds: anchorMaxAgeSeconds(env) ?? DEFAULT_ANCHOR_MAX_AGE_SECONDS,
    checkInToken: get(env, 'ROTOR_CHECKIN_TOKEN'),
    identity,
    manifestMaxAgeSeconds: positiveInt(get(env, 'ROTOR_MANIFEST_MAX_AGE'), 'ROTOR_MANIFEST_MAX_AGE', 60),
    crlCacheSeconds: positiveInt(get(env, 'ROTOR_CRL_MAX_AGE'), 'ROTOR_CRL_MAX_AGE', 30),
    pageToken: get(env, 'ROTOR_PAGE_TOKEN'),
    metricsHost: get(env, 'ROTOR_METRICS_HOST') ?? '127.0.0.1',
    metricsPort: port(env, 'ROTOR_METRICS_PORT', 9464),
    tls: cert && key ? { cert: cert.toString('utf8'), key: key.toString('utf8') } : undefined,
    maxCrlStreams: positiveInt(get(env, 'ROTOR_CRL_MAX_STREAMS'), 'ROTOR_CRL_MAX_STREAMS', 8),
    crlStallSeconds: positiveInt(get(env, 'ROTOR_CRL_STALL_SECONDS'), 'ROTOR_CRL_STALL_SECONDS', 15),
    resultsBucketSeconds: positiveInt(
      get(env, 'ROTOR_RESULTS_BUCKET_SECONDS'),
      'ROTOR_RESULTS_BUCKET_SECONDS',
      5,
    ),
  };
}

// ---------------------------------------------------------------- the whole

export interface RotorConfig {
  readonly databaseUrl: string;
  /** DATABASE_URL was given (the demo starts an embedded PostgreSQL when it was not). */
  readonly databaseUrlSet: boolean;
  readonly logLevel: RotorLogLevel;
  /** ROTOR_DEBUG: the CLI prints an unexpected error's stack. */
  readonly debug: boolean;
  readonly temporal: TemporalConfig;
  readonly temporalTools: ReturnType<typeof temporalTools>;
  readonly custody: CustodyConfig;
  readonly worker: WorkerSettings;
  /** ROTOR_FAILPOINT as given (tests only); src/activities/failpoint.ts parses it. */
  readonly failpoint: string | undefined;
  /** ROTOR_ANCHOR_MAX_AGE when set: a new rotation's anchor wait, unless its policy names another. */
  readonly anchorMaxAgeSeconds: number | undefined;
  readonly serve: ServeConfig;
  /** `rotor verifier run`: the identity when --identity is absent, and the check-in credential. */
  readonly verifier: { identity: string | undefined; checkInCredential: string };
  /** `rotor db migrate`: passwords of the least-privilege login roles, when given. */
  readonly dbPasswords: { rotor_worker: string | undefined; rotor_serve: string | undefined };
  /** Who runs the command (USER, LOGNAME), for `--requested-by` and `--by`. */
  readonly operator: string;
  /** ROTOR_DEMO_FAIL_AT as given (tests only); src/demo/run-demo.ts checks it against its stages. */
  readonly demoFailAt: string | undefined;
}

/**
 * An object whose properties are computed on first read and then kept: each section of the
 * configuration is parsed once, and only by a process that uses it. Frozen.
 */
function section<T extends object>(parts: { [K in keyof T]: () => T[K] }): T {
  const out = {} as T;
  for (const name of Object.keys(parts) as Array<keyof T>) {
    let done = false;
    let value: T[typeof name];
    Object.defineProperty(out, name, {
      enumerable: true,
      get() {
        if (!done) {
          value = parts[name]();
          done = true;
        }
        return value;
      },
    });
  }
  return Object.freeze(out);
}

/**
 * The configuration of this process. The default argument is the only read of `process.env` in
 * rotor's source; tests pass an environment of their own.
 */
export function loadConfig(env: Env = process.env): RotorConfig {
  // A copy: what was parsed does not change if the process's environment changes later.
  const e: Env = Object.freeze({ ...env });
  return section<RotorConfig>({
    databaseUrl: () => databaseUrl(e),
    databaseUrlSet: () => get(e, 'DATABASE_URL') !== undefined,
    logLevel: () => logLevel(e),
    debug: () => get(e, 'ROTOR_DEBUG') !== undefined,
    temporal: () => temporalConfig(e),
    temporalTools: () => temporalTools(e),
    custody: () => custodyConfig(e),
    worker: () => workerSettings(e),
    failpoint: () => get(e, 'ROTOR_FAILPOINT'),
    anchorMaxAgeSeconds: () => anchorMaxAgeSeconds(e),
    serve: () => serveConfig(e),
    verifier: () => ({
      identity: get(e, 'ROTOR_IDENTITY'),
      checkInCredential: get(e, 'ROTOR_VERIFIER_CREDENTIAL') ?? get(e, 'ROTOR_CHECKIN_TOKEN') ?? '',
    }),
    dbPasswords: () => ({
      rotor_worker: get(e, 'ROTOR_WORKER_DB_PASSWORD'),
      rotor_serve: get(e, 'ROTOR_SERVE_DB_PASSWORD'),
    }),
    operator: () => get(e, 'USER') ?? get(e, 'LOGNAME') ?? 'unknown',
    demoFailAt: () => get(e, 'ROTOR_DEMO_FAIL_AT'),
  });
}
