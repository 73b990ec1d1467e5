/**
 * Rotation policies: the runbook's timeline and the trigger table, as data.
 * Pure and deterministic: imported by the workflow, the CLI's `rotate plan` and the tests.
 */

import { type CustodianKind, REISSUE_AS, type ReissueAs, TRIGGERS, type Trigger } from '../domain';
import { PolicyError } from '../errors';

export { type CustodianKind, PolicyError, TRIGGERS, type Trigger };

export interface RotationPolicy {
  /** t of the re-sign step and of the dual-key anchor (runbook: 5 min). */
  resignAtSeconds: number;
  /** Every live verifier must hold the new anchor by then (runbook: 30 min); later pauses the rotation. */
  adoptBySeconds: number;
  /** t of the revocation of the old key's manifests (runbook: 35 min). */
  revokeAtSeconds: number;
  /** t of the old private key's destruction: the overlap window closes (runbook: 1 h). */
  decommissionAtSeconds: number;
  /** A verifier that checked in within this window counts as live. */
  verifierLivenessSeconds: number;
  /** With no live verifier, adoption is the anchor's max-age plus this margin since publication. */
  adoptionMarginSeconds: number;
  /** The anchor's Cache-Control max-age that verifiers honour (the HTTP service's setting). */
  anchorMaxAgeSeconds: number;
  /** How often adoption and acceptance are re-checked while waiting. */
  pollSeconds: number;
  /** Whether a software custodian may hold the new key (demo and development only). */
  allowSoftwareCustodian: boolean;
  /** Whether a manifest that cannot be re-issued stops the rotation before the anchor changes. */
  blockOnUnresignable: boolean;
  /** How long the destroyed key's public key stays archived. */
  retentionDays: number;
  /** After decommission: keep the old public key in the anchor, verify-only, until retention ends. */
  keepOldKeyInAnchor: boolean;
  /** Manifests per transaction in re-sign and revoke. */
  batchSize: number;
  /** Manifests per activity call: the workflow records progress between calls. */
  chunkSize: number;
  /** A scheduled rotation is skipped while the active key is younger than this (the 90-day policy). */
  minKeyAgeDays: number;
  /** A step's worker counts as lost when its heartbeats stop for this long; another resumes the step. */
  heartbeatTimeoutSeconds: number;
  /**
   * A verifier gate is polled inside one heartbeating activity that reports back this often: the
   * history grows by a handful of events per slice, not per poll (24 h at 5 min: 288 slices).
   */
  gateSliceSeconds: number;
  /**
   * A step whose activity keeps failing (retried with backoff up to a minute, without an attempt
   * cap) pauses the rotation and alerts after this long; it goes on by itself once it succeeds.
   */
  stepAlertSeconds: number;
  /**
   * The version a re-issued v0.1 manifest gets: "0.2" (a COSE_Sign1; agent-manifest ended new v0.1
   * issuance on 2026-11-30, and a re-issue is an issuance) or "same" (each manifest keeps its
   * version). v0.2 manifests are always re-issued as v0.2.
   */
  reissueAs: ReissueAs;
  /**
   * Pickup gate (issue 14): before revocation, agents that rotor serves manifests to must have
   * fetched their re-issued twin. Agents seen fetching but still on the original hold revocation
   * for up to `pickupGraceSeconds` past its planned time, then the rotation pauses and alerts.
   */
  pickupGate: boolean;
  pickupGraceSeconds: number;
  /** The agents' cache lifetime of their manifest (`ROTOR_MANIFEST_MAX_AGE` of rotor serve). */
  deliveryMaxAgeSeconds: number;
  /** Agents never seen fetching are waited for until release + deliveryMaxAgeSeconds + this. */
  pickupMarginSeconds: number;
  /**
   * Analysis gate (issue 14): from the release of the new key's manifests until revocation,
   * rejections that verifiers report of new-key manifests or of not-yet-revoked old-key manifests,
   * over a sliding window. More than `analysisMaxRejections`, or a rate above
   * `analysisMaxRejectionRate` over at least `analysisMinResults` results, pauses the rotation
   * before revocation and alerts; with `analysisRollback` it rolls back on its own.
   */
  analysisGate: boolean;
  analysisWindowSeconds: number;
  analysisMaxRejections: number;
  analysisMaxRejectionRate: number;
  analysisMinResults: number;
  analysisRollback: boolean;
}

export { REISSUE_AS, type ReissueAs };

const MINUTE = 60;
const HOUR = 3600;

/** The runbook's trigger table: how long both keys overlap before the old one is destroyed. */
export const TRIGGER_OVERLAP_SECONDS: Record<Trigger, number> = {
  compromise: 0,
  scheduled: 24 * HOUR,
  personnel: 1 * HOUR,
  'hsm-replacement': 24 * HOUR,
};

/**
 * The runbook's sequence (t=0 keygen, 5m re-sign and anchor, 30m adoption, 35m revoke, 1h delete)
 * is the 1-hour overlap; a longer overlap stretches it so the old key's manifests stay valid for
 * the whole window: adoption by overlap-30m, revocation at overlap-25m, destruction at overlap.
 * A compromise has no overlap: everything happens at once, revocation first.
 */
export function defaultPolicy(trigger: Trigger): RotationPolicy {
  const overlap = TRIGGER_OVERLAP_SECONDS[trigger];
  const timeline =
    trigger === 'compromise'
      ? { resignAtSeconds: 0, adoptBySeconds: 0, revokeAtSeconds: 0, decommissionAtSeconds: 0 }
      : {
          resignAtSeconds: 5 * MINUTE,
          adoptBySeconds: overlap - 30 * MINUTE,
          revokeAtSeconds: overlap - 25 * MINUTE,
          decommissionAtSeconds: overlap,
        };
  return {
    ...timeline,
    verifierLivenessSeconds: 10 * MINUTE,
    adoptionMarginSeconds: 5 * MINUTE,
    anchorMaxAgeSeconds: 5 * MINUTE,
    pollSeconds: 15,
    allowSoftwareCustodian: false,
    blockOnUnresignable: true,
    retentionDays: 365,
    keepOldKeyInAnchor: false,
    batchSize: 500,
    chunkSize: 10_000,
    minKeyAgeDays: 90,
    heartbeatTimeoutSeconds: 60,
    gateSliceSeconds: 5 * MINUTE,
    stepAlertSeconds: 10 * MINUTE,
    reissueAs: '0.2',
    pickupGate: true,
    pickupGraceSeconds: 5 * MINUTE,
    deliveryMaxAgeSeconds: 60,
    pickupMarginSeconds: 60,
    analysisGate: true,
    analysisWindowSeconds: 5 * MINUTE,
    analysisMaxRejections: 50,
    analysisMaxRejectionRate: 0.01,
    analysisMinResults: 100,
    analysisRollback: false,
  };
}

/** The trigger's defaults with the caller's overrides, checked: offsets ordered, sizes positive. */
export function resolvePolicy(trigger: Trigger, overrides: Partial<RotationPolicy> = {}): RotationPolicy {
  if (!TRIGGERS.includes(trigger)) {
    throw new PolicyError(`unknown trigger '${String(trigger)}': expected one of ${TRIGGERS.join(', ')}`);
  }
  const policy = { ...defaultPolicy(trigger), ...stripUndefined(overrides) };
  // A compromise has no timeline to stretch or compress: every step runs at once.
  if (trigger === 'compromise') {
    Object.assign(policy, {
      resignAtSeconds: 0,
      adoptBySeconds: 0,
      revokeAtSeconds: 0,
      decommissionAtSeconds: 0,
    });
  }
  if (!REISSUE_AS.includes(policy.reissueAs)) {
    throw new PolicyError(
      `policy.reissueAs must be one of ${REISSUE_AS.map((v) => JSON.stringify(v)).join(', ')}, got ${JSON.stringify(policy.reissueAs)}`,
    );
  }
  for (const [name, value] of Object.entries(policy)) {
    if (typeof value === 'number' && (!Number.isFinite(value) || value < 0)) {
      throw new PolicyError(`policy.${name} must be a non-negative number, got ${value}`);
    }
  }
  if (policy.analysisMaxRejectionRate > 1) {
    throw new PolicyError(
      `policy.analysisMaxRejectionRate is a fraction from 0 to 1, got ${policy.analysisMaxRejectionRate}`,
    );
  }
  for (const name of [
    'batchSize',
    'chunkSize',
    'pollSeconds',
    'heartbeatTimeoutSeconds',
    'gateSliceSeconds',
    'stepAlertSeconds',
  ] as const) {
    if (policy[name] <= 0) throw new PolicyError(`policy.${name} must be positive, got ${policy[name]}`);
  }
  const order: (keyof RotationPolicy)[] = [
    'resignAtSeconds',
    'adoptBySeconds',
    'revokeAtSeconds',
    'decommissionAtSeconds',
  ];
  for (let i = 1; i < order.length; i++) {
    const a = order[i - 1]!;
    const b = order[i]!;
    if ((policy[a] as number) > (policy[b] as number)) {
      throw new PolicyError(`policy.${a} (${policy[a]}) must not come after policy.${b} (${policy[b]})`);
    }
  }
  return policy;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

export type StepName =
  | 'preflight'
  | 'keygen'
  | 're-sign'
  | 'publish-anchor'
  | 'await-adoption'
  | 'pre-revocation'
  | 'revoke'
  | 'decommission';

/** The compromise path's order after keygen: distrust first, then revoke, then re-issue. */
export const COMPROMISE_STEPS: readonly StepName[] = ['publish-anchor', 'revoke', 're-sign', 'decommission'];

/**
 * Planned offsets from t=0 for each runbook step, in the order the trigger runs them. This is the
 * one place the order lives: the workflow refuses to run a step out of it (see `runStep`).
 */
export function plannedSteps(
  trigger: Trigger,
  policy: RotationPolicy,
): { step: StepName; atSeconds: number }[] {
  if (trigger === 'compromise') {
    return [
      { step: 'preflight', atSeconds: 0 },
      { step: 'keygen', atSeconds: 0 },
      ...COMPROMISE_STEPS.map((step) => ({ step, atSeconds: 0 })),
    ];
  }
  return [
    { step: 'preflight', atSeconds: 0 },
    { step: 'keygen', atSeconds: 0 },
    { step: 're-sign', atSeconds: policy.resignAtSeconds },
    { step: 'publish-anchor', atSeconds: policy.resignAtSeconds },
    { step: 'await-adoption', atSeconds: policy.resignAtSeconds },
    // Right after adoption, until revocation: the analysis gate watches verifiers' rejections,
    // and at revocation time the pickup gate waits for the agents (issue 14).
    { step: 'pre-revocation', atSeconds: policy.resignAtSeconds },
    { step: 'revoke', atSeconds: policy.revokeAtSeconds },
    { step: 'decommission', atSeconds: policy.decommissionAtSeconds },
  ];
}
