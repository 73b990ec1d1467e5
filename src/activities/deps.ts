/**
 * What the activities need from the process that runs them: the pool, custodians, and settings.
 * The worker builds this from its configuration; tests build it over their own database and token.
 */
import { Context } from '@temporalio/activity';
import type { Logger } from '@temporalio/common';
import type { WorkerSettings } from '../config';
import type { CustodianKind, KeyCustodian } from '../custody/custodian';
import type { Signer } from '../manifest/signer';
import type { Pool } from '../store/db';
import { requireKey } from '../store/keys';
import { DEFAULT_CRL_META_LIFETIME_SECONDS, signCrlHeaders } from './crl-meta';
import type { Failpoint } from './failpoint';

/**
 * The activities' settings: src/config.ts's `WorkerSettings` (parsed from the environment by the
 * worker's entry point); tests and the rotor stack build their own.
 */
export type ActivitySettings = Omit<WorkerSettings, 'anchorLifetimeSeconds' | 'crlMetaLifetimeSeconds'> & {
  /** How long a signed trust anchor stays valid after it is issued (default 7 days). */
  anchorLifetimeSeconds?: number;
  /** How long a signed CRL header may be relied on after it is issued (default 1 hour). */
  crlMetaLifetimeSeconds?: number;
};

export interface ActivityDeps {
  pool: Pool;
  /** The custodian of a kind; opened once per process and shared. */
  custodian(kind: CustodianKind): Promise<KeyCustodian>;
  settings: ActivitySettings;
  /** Where activities write operator-facing lines (never key material). */
  log?: (line: string) => void;
  /** Test-only (ROTOR_FAILPOINT, src/activities/failpoint.ts); undefined in production. */
  failpoint?: Failpoint;
}

/**
 * After a change of the served CRL: a new signed header for every identity with a revocation key
 * (the body is shared, so each identity's header describes it), src/activities/crl-meta.ts.
 */
export async function signCrlHeadersAfterChange(deps: ActivityDeps): Promise<void> {
  await signCrlHeaders(deps.pool, deps.custodian, {
    lifetimeSeconds: deps.settings.crlMetaLifetimeSeconds ?? DEFAULT_CRL_META_LIFETIME_SECONDS,
  });
}

/** The Signer of a registered key, from whichever custodian holds it. */
export async function signerForKey(deps: ActivityDeps, keyId: string): Promise<Signer> {
  const key = await requireKey(deps.pool, keyId);
  const custodian = await deps.custodian(key.custodian as CustodianKind);
  return custodian.signer(key.handle);
}

/** The activity context when running under a worker; undefined when called directly (benchmarks). */
export function activityContext(): Context | undefined {
  try {
    return Context.current();
  } catch {
    // Context.current() throws outside an activity: a direct call (benchmarks) has no context.
    return undefined;
  }
}

const SILENT: Logger = { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} };

/**
 * The activity's logger: the worker's Runtime logger with the activity's workflow id, activity
 * id, type and attempt attached by the SDK. Outside a worker (a direct call) lines are dropped.
 */
export function stepLog(): Logger {
  return activityContext()?.log ?? SILENT;
}
