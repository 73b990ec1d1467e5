/**
 * The pre-rotation checklist's gates (docs/RUNBOOK.md, "Pre-rotation checklist"), as functions both the
 * preflight activity (./preflight.ts) and `rotor rotate plan` (src/rotation/plan.ts) call, so what
 * a plan predicts and what a rotation checks cannot drift apart. The gates that need the worker's
 * custodian, its public URL or its webhook run only in the preflight; `PREFLIGHT_GATES` lists every
 * gate in the preflight's order with what it proves, for the plan to show.
 */
import type { CustodianKind } from '../domain';
import { activeKey, type KeyRecord } from '../store/keys';
import { countManifests } from '../store/manifests';
import type { Queryable } from '../store/queryable';
import { lastCompletedRotation } from '../store/rotations';
import type { Gate } from './types';

export const DAY_MS = 86_400_000;

export type GateName =
  | 'active-key'
  | 'key-age'
  | 'manifests-counted'
  | 'custodian-health'
  | 'custodian-policy'
  | 'crl-endpoint'
  | 'crl-writable'
  | 'on-call-notified';

/** Every gate, in the order the preflight checks them, with what it proves. */
export const PREFLIGHT_GATES: readonly { name: GateName; proves: (custodian: CustodianKind) => string }[] = [
  { name: 'active-key', proves: () => 'the identity has an active key' },
  {
    name: 'key-age',
    proves: () => "scheduled only: the key's last rotation is at least policy.minKeyAgeDays ago",
  },
  { name: 'manifests-counted', proves: () => "the key's active manifests are counted" },
  {
    name: 'custodian-health',
    proves: (custodian) => `the worker opens the ${custodian} custodian and checks it`,
  },
  {
    name: 'custodian-policy',
    proves: (custodian) =>
      custodian === 'pkcs11'
        ? 'a probe key generated on the token must be local, never extractable, always sensitive'
        : 'software custodian allowed by policy: a probe key is generated and destroyed',
  },
  {
    name: 'crl-endpoint',
    proves: () => "the worker GETs the CRL at its ROTOR_PUBLIC_URL's /.well-known/agent-manifest/revocation",
  },
  { name: 'crl-writable', proves: () => 'a probe revocation record is written and rolled back' },
  {
    name: 'on-call-notified',
    proves: () => "the on-call webhook (ROTOR_ONCALL_WEBHOOK) is told, or the worker's log",
  },
];

/** The identity's active key: without one there is nothing to rotate. */
export async function activeKeyGate(
  q: Queryable,
  identity: string,
): Promise<{ gate: Gate; key?: KeyRecord }> {
  const key = await activeKey(q, identity);
  if (!key) {
    return {
      gate: {
        name: 'active-key',
        ok: false,
        detail: `identity '${identity}' has no active key: run rotor key init --identity ${identity}`,
      },
    };
  }
  return { gate: { name: 'active-key', ok: true, detail: `${key.keyId} (${key.custodian})` }, key };
}

export interface KeyAge {
  /** Days since the key was activated. */
  ageDays: number;
  /** Days since the key's last rotation, whatever triggered it (or its activation). */
  daysSinceRotation: number;
  /** When a scheduled rotation is next due. */
  dueAt: string;
  /** A scheduled rotation would run now. */
  due: boolean;
  /** Why a scheduled rotation is skipped (when not due). */
  skipReason?: string;
}

/**
 * The 90-day policy: a key rotated early for any reason is not rotated again by the schedule
 * until it is due (counted from its last completed rotation, or its activation).
 */
export async function keyAge(
  q: Queryable,
  identity: string,
  key: KeyRecord,
  minKeyAgeDays: number,
  now: Date,
): Promise<KeyAge> {
  const since = key.activatedAt ?? key.createdAt;
  const last = await lastCompletedRotation(q, identity);
  const reference = last?.endedAt && last.endedAt > since ? last.endedAt : since;
  const daysSinceRotation = (now.getTime() - reference.getTime()) / DAY_MS;
  const dueAt = new Date(reference.getTime() + minKeyAgeDays * DAY_MS).toISOString();
  const due = daysSinceRotation >= minKeyAgeDays;
  return {
    ageDays: (now.getTime() - since.getTime()) / DAY_MS,
    daysSinceRotation,
    dueAt,
    due,
    skipReason: due
      ? undefined
      : `key ${key.keyId.slice(0, 12)}… is ${daysSinceRotation.toFixed(1)} days old; the next scheduled rotation is due ${dueAt}`,
  };
}

/** How many manifests the rotation will re-sign (and later revoke). */
export async function manifestsGate(q: Queryable, keyId: string): Promise<{ gate: Gate; count: number }> {
  const count = await countManifests(q, { keyId, status: 'active' });
  return {
    gate: { name: 'manifests-counted', ok: true, detail: `${count} active manifest(s) signed by ${keyId}` },
    count,
  };
}

/** The policy's refusal of a software custodian, when it requires an HSM; undefined when allowed. */
export function custodianPolicyRefusal(
  custodian: CustodianKind,
  allowSoftwareCustodian: boolean,
): string | undefined {
  if (custodian === 'software' && !allowSoftwareCustodian) {
    return 'the software custodian is not an HSM and this policy requires one (set allowSoftwareCustodian for demos only)';
  }
  return undefined;
}
