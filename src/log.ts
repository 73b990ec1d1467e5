/**
 * rotor's structured log: JSON lines (pino) on stderr, stdout being reserved for data. One logger
 * per process, made here; the worker installs it as the Temporal Runtime's logger, so activity
 * lines (`log` from `@temporalio/activity`) carry the workflow id, activity id and attempt, and
 * workflow lines (`log` from `@temporalio/workflow`, replay-safe) the workflow and run ids.
 *
 * Secrets are redacted by field name at any depth up to REDACT_DEPTH: a PIN, a seed, a token, a
 * credential, an Authorization header, a password never reach a log line, whoever passes them.
 */
import type { LogLevel, LogMetadata, Logger as TemporalLogger } from '@temporalio/common';
import { type DestinationStream, type Level, type Logger, pino } from 'pino';

export type RotorLogger = Logger;

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type RotorLogLevel = (typeof LOG_LEVELS)[number];

/** Field names whose values are never written (compared exactly, case as written here). */
export const SECRET_FIELDS = [
  'pin',
  'soPin',
  'seed',
  'token',
  'checkInToken',
  'pageToken',
  'apiKey',
  // A task token lets its holder complete or fail the activity: the SDK puts it in activity lines.
  'taskToken',
  'credential',
  'credentials',
  'authorization',
  'Authorization',
  'cookie',
  'password',
  'passphrase',
  'secret',
  'privateKey',
] as const;

const REDACT_DEPTH = 4;
export const REDACTED = '[redacted]';

/** `pin`, `*.pin`, `*.*.pin`, …: pino's redaction matches one level per wildcard. */
export const REDACT_PATHS: string[] = SECRET_FIELDS.flatMap((field) =>
  Array.from({ length: REDACT_DEPTH }, (_, depth) => [...Array<string>(depth).fill('*'), field].join('.')),
);

export interface LoggerOptions {
  level?: RotorLogLevel;
  /** Where lines go; default stderr (fd 2), synchronously, so a crash loses nothing. */
  destination?: DestinationStream;
  /** Fields on every line, e.g. `{ component: 'worker' }`. */
  base?: Record<string, unknown>;
}

export function createLogger(options: LoggerOptions = {}): RotorLogger {
  return pino(
    {
      level: options.level ?? 'info',
      base: { service: 'rotor', pid: process.pid, ...options.base },
      timestamp: pino.stdTimeFunctions.isoTime,
      // `"level":"info"` rather than pino's numbers: grep-able and what log shippers expect.
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: REDACT_PATHS, censor: REDACTED },
    },
    options.destination ?? pino.destination({ fd: 2, sync: true }),
  );
}

const TEMPORAL_LEVELS: Record<LogLevel, Level> = {
  TRACE: 'trace',
  DEBUG: 'debug',
  INFO: 'info',
  WARN: 'warn',
  ERROR: 'error',
};

/**
 * The Temporal SDK's Logger over a pino logger, for `Runtime.install({ logger })`. The SDK passes
 * its context (workflowId, runId, activityId, attempt, sdkComponent, …) as metadata; it becomes
 * fields of the line. The SDK's own timestamp symbol is dropped: pino stamps the line itself.
 */
export function temporalLogger(logger: RotorLogger): TemporalLogger {
  const write = (level: LogLevel, message: string, meta?: LogMetadata) => {
    const fields: Record<string, unknown> = {};
    if (meta) for (const [k, v] of Object.entries(meta)) fields[k] = v;
    logger[TEMPORAL_LEVELS[level] ?? 'info'](fields, message);
  };
  return {
    log: write,
    trace: (message, meta) => write('TRACE', message, meta),
    debug: (message, meta) => write('DEBUG', message, meta),
    info: (message, meta) => write('INFO', message, meta),
    warn: (message, meta) => write('WARN', message, meta),
    error: (message, meta) => write('ERROR', message, meta),
  };
}

/**
 * A destination that turns each JSON line back into one human line (`msg key=value …`), for the
 * CLI's default output; `--log-json` writes the JSON lines themselves. Redaction has already
 * happened: this sees only what pino wrote.
 */
export function humanLines(out: NodeJS.WritableStream, prefix = 'rotor'): DestinationStream {
  return {
    write(line: string) {
      let record: Record<string, unknown>;
      try {
        record = JSON.parse(line) as Record<string, unknown>;
      } catch {
        // Not a record (pino writes only records; defensive): pass it through unchanged.
        out.write(line);
        return;
      }
      const { msg, level, time: _t, pid: _p, service: _s, component, ...fields } = record;
      const head = `${prefix}${component ? ` ${String(component)}` : ''}:`;
      const tag = level === 'warn' || level === 'error' || level === 'fatal' ? ` ${String(level)}:` : '';
      const rest = Object.entries(fields)
        .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
        .join(' ');
      out.write(`${head}${tag} ${String(msg ?? '')}${rest ? ` ${rest}` : ''}\n`);
    },
  };
}

let cliJson = false;

/** `rotor --log-json`: the CLI's log lines become pino JSON lines (set once, by src/cli/main.ts). */
export function setCliLogJson(json: boolean): void {
  cliJson = json;
}

export function isCliLogJson(): boolean {
  return cliJson;
}

/** The CLI's logger: human lines on stderr by default, JSON lines with `--log-json`. */
export function cliLogger(level: RotorLogLevel, base: Record<string, unknown> = {}): RotorLogger {
  return createLogger({
    level,
    base,
    ...(cliJson ? {} : { destination: humanLines(process.stderr) }),
  });
}
