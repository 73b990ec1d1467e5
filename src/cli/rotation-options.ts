/**
 * Command-line values shared by `rotor rotate` and `rotor schedule`, checked before anything is
 * sent to Temporal: a bad value is a one-line usage error naming the option and the field.
 */
import { type CustodyConfig, parseCustodianKind } from '../config';
import { UsageError } from '../errors';
import {
  type CustodianKind,
  defaultPolicy,
  PolicyError,
  type RotationPolicy,
  resolvePolicy,
  TRIGGERS,
  type Trigger,
} from '../workflows/policy';

export function parseTrigger(value: string): Trigger {
  if ((TRIGGERS as readonly string[]).includes(value)) return value as Trigger;
  throw new UsageError(`--trigger must be one of ${TRIGGERS.join(', ')}, got '${value}'`, 'ROTATION_TRIGGER');
}

/** `--custodian`, else ROTOR_CUSTODIAN (the configuration's `custody.kind`). */
export function parseCustodian(
  value: string | undefined,
  custody: Pick<CustodyConfig, 'kind'>,
): CustodianKind {
  return value === undefined ? custody.kind : parseCustodianKind(value, '--custodian');
}

export function checkIdentity(identity: string, option = '--identity'): string {
  if (!identity.trim()) throw new UsageError(`${option} must not be empty`, 'ROTATION_IDENTITY');
  return identity;
}

/**
 * `--policy-json`: overrides of the trigger's default policy. Every field must be one the policy
 * has, with the type its default has; the result must pass the workflow's own `resolvePolicy`.
 */
export function parsePolicyJson(
  text: string | undefined,
  trigger: Trigger,
  /** ROTOR_ANCHOR_MAX_AGE when set (the configuration's `anchorMaxAgeSeconds`). */
  anchorMaxAgeSeconds: number | undefined,
): { overrides: Partial<RotationPolicy>; policy: RotationPolicy } {
  // The rotation waits out the anchor's cache lifetime: the one `rotor serve` sends, unless the
  // policy names another.
  const fromEnv: Partial<RotationPolicy> = anchorMaxAgeSeconds !== undefined ? { anchorMaxAgeSeconds } : {};
  if (text === undefined) return { overrides: fromEnv, policy: resolvePolicy(trigger, fromEnv) };
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`--policy-json is not JSON: ${(err as Error).message}`, 'ROTATION_POLICY');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new UsageError('--policy-json must be a JSON object of policy fields', 'ROTATION_POLICY');
  }
  const defaults = defaultPolicy(trigger) as unknown as Record<string, unknown>;
  for (const [field, value] of Object.entries(parsed)) {
    if (!(field in defaults)) {
      throw new UsageError(
        `--policy-json: unknown field '${field}' (known: ${Object.keys(defaults).join(', ')})`,
        'ROTATION_POLICY',
      );
    }
    if (typeof value !== typeof defaults[field]) {
      throw new UsageError(
        `--policy-json: field '${field}' must be a ${typeof defaults[field]}, got ${JSON.stringify(value)}`,
        'ROTATION_POLICY',
      );
    }
  }
  const overrides = { ...fromEnv, ...(parsed as Partial<RotationPolicy>) };
  try {
    return { overrides, policy: resolvePolicy(trigger, overrides) };
  } catch (err) {
    if (err instanceof PolicyError) throw new UsageError(`--policy-json: ${err.message}`, 'ROTATION_POLICY');
    throw err;
  }
}

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

/** `90d`, `12h`, `30m`, `45s` (a whole number and one unit) to seconds. */
export function parseDuration(text: string, option: string): number {
  const match = /^(\d+)([smhd])$/.exec(text.trim());
  const seconds = match ? Number(match[1]) * UNIT_SECONDS[match[2]!]! : 0;
  if (!match || seconds <= 0 || !Number.isSafeInteger(seconds)) {
    throw new UsageError(
      `${option} must be a positive whole number with a unit s, m, h or d (like 90d or 12h), got '${text}'`,
      'DURATION',
    );
  }
  return seconds;
}

/** Seconds as the largest unit that divides them: 7776000 → `90d`. */
export function formatDuration(seconds: number): string {
  for (const unit of ['d', 'h', 'm'] as const) {
    const size = UNIT_SECONDS[unit]!;
    if (seconds >= size && seconds % size === 0) return `${seconds / size}${unit}`;
  }
  return `${seconds}s`;
}
