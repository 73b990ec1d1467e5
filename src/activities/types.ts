/**
 * Inputs and outputs of the rotation's activities. Plain JSON only: these travel through
 * Temporal's history, so they carry key ids, counts and reasons, never key material.
 */
import type { CustodianKind, ReissueAs, Trigger, VerifierAdoption } from '../domain';

export interface Gate {
  name: string;
  ok: boolean;
  detail: string;
}

export interface PreflightInput {
  workflowId: string;
  identity: string;
  trigger: Trigger;
  custodian: CustodianKind;
  allowSoftwareCustodian: boolean;
  minKeyAgeDays: number;
  requestedBy: string;
  reason: string;
}

export interface PreflightResult {
  ok: boolean;
  /** Set when a scheduled rotation is not due: the workflow ends as `skipped`. */
  skip?: string;
  oldKeyId?: string;
  /** The identity's anchor version at preflight: the first key switch compares-and-sets on it. */
  anchorVersion?: number;
  activeManifests: number;
  gates: Gate[];
}

export interface GenerateKeyInput {
  workflowId: string;
  /** The run id makes the key's label unique to this rotation, so a retry finds its own key. */
  runId: string;
  identity: string;
  custodian: CustodianKind;
}

export interface GeneratedKeyInfo {
  keyId: string;
  custodian: CustodianKind;
  handle: string;
  /** Plain-language facts about where the key lives (describe()), for the audit log. */
  summary: string;
}

export interface ResignChunkInput {
  workflowId: string;
  fromKeyId: string;
  toKeyId: string;
  /** Which manifests of `fromKeyId` to re-issue: `active` normally, `revoked` after a compromise. */
  status: 'active' | 'revoked';
  afterManifestId: string | null;
  /** Manifests to look at in this call; the workflow calls again while `remaining` > 0. */
  limit: number;
  batchSize: number;
  /** Compromise: only manifests stored before this instant (ISO) are re-issued (`--trusted-before`). */
  trustedBefore?: string;
  /** Compromise: when the rotation started; a manifest revoked before it stays revoked. */
  rotationStartedAt?: string;
  /** The policy's reissueAs; absent (histories from before it existed) means "0.2". */
  reissueAs?: ReissueAs;
}

export interface ResignChunkResult {
  /** Twins written by this call. */
  resigned: number;
  /**
   * A sample (at most SAMPLE_SIZE, src/workflows/rotation-api.ts) of the manifests this call
   * declined to re-issue, with reasons; every one of them is in the `rotation_declined` table.
   * Left untouched, never signed.
   */
  failed: { manifestId: string; reason: string }[];
  /** How many manifests this call declined (the sample's full count). */
  declinedCount: number;
  /** Twins that carry their original's log entry as prior_transparency_log_entry (spec 2.2). */
  withPriorLogEntry: number;
  cursor: string | null;
  /** Candidates after the cursor still to do. */
  remaining: number;
}

export interface CountInput {
  keyId: string;
  status: 'active' | 'superseded' | 'revoked';
  withoutSuccessor?: boolean;
}

export interface AnchorKeyInput {
  keyId: string;
  status: 'active' | 'retiring' | 'verify-only';
  validUntil?: string | null;
}

/**
 * One key switch: registry moves and the new anchor in one Postgres transaction, compare-and-set
 * on the anchor version. Key ids and states only; public keys come from the registry.
 */
export interface SwitchKeysInput {
  identity: string;
  /** The version this switch follows. Another version found: nothing changes (unless it is this very switch). */
  expectedAnchorVersion: number;
  activeKeyId: string;
  /** Registry moves, in order (the outgoing key steps down before the incoming one steps up). */
  transitions: { keyId: string; to: SetKeyStateInput['to'] }[];
  /** The anchor's keys, the active one first. */
  anchorKeys: AnchorKeyInput[];
  /** The version stragglers are re-issued as (the policy's reissueAs); absent means "0.2". */
  reissueAs?: ReissueAs;
}

export interface SwitchKeysResult {
  version: number;
  publishedAt: string;
  /** False when an earlier attempt of this switch had already committed it. */
  changed: boolean;
  /** Old-key manifests that arrived after the re-sign pass and were handled before the switch. */
  stragglers?: { resigned: number; declined: number };
}

export interface SetKeyStateInput {
  keyId: string;
  to: 'pending' | 'active' | 'retiring' | 'retired' | 'destroyed' | 'quarantined';
}

export interface AdoptionInput {
  identity: string;
  version: number;
  publishedAt: string;
  livenessSeconds: number;
  anchorMaxAgeSeconds: number;
  marginSeconds: number;
}

export interface AcceptanceInput {
  identity: string;
  keyId: string;
  livenessSeconds: number;
}

/** A verifier gate polled inside one activity until it is satisfied or `untilMs` passes. */
export type GateWatchInput = (
  | ({ gate: 'adoption' } & AdoptionInput)
  | ({ gate: 'acceptance' } & AcceptanceInput)
) & {
  pollSeconds: number;
  /** Epoch ms: report back by then even if the gate is not satisfied. */
  untilMs: number;
};

export interface GateCheck {
  satisfied: boolean;
  mode: 'check-in' | 'cache-lifetime';
  /** Live verifiers counted. */
  live: number;
  /** How many of them hold the rotation back. */
  behindCount: number;
  /** A sample, those behind first. */
  verifiers: VerifierAdoption[];
  /** The first few verifier ids holding the rotation back. */
  behind: string[];
  detail: string;
  checkedAt: string;
}

export interface RevokeChunkInput {
  oldKeyId: string;
  signingKeyId: string;
  /** Which of the old key's manifests to revoke: `superseded` normally, `active` after a compromise. */
  status: 'active' | 'superseded';
  reason: string;
  limit: number;
  batchSize: number;
  /** The version stragglers are re-issued as (the policy's reissueAs); absent means "0.2". */
  reissueAs?: ReissueAs;
  /**
   * Escalation only (ISO instant, the compromise's trusted cut-off): twins already made of the
   * old key's manifests stored at or after it are revoked too, their originals declined.
   */
  distrustTwinsStoredFrom?: string;
}

export interface RevokeChunkResult {
  /** Old-key manifests that arrived after the re-sign pass, re-issued (or declined) before revoking. */
  stragglers?: { resigned: number; declined: number };
  revoked: number;
  remaining: number;
  crlSize: number;
  /** Escalation: twins of manifests stored after the cut-off, revoked by this call. */
  untrustedTwins?: number;
}

export interface DecommissionInput {
  keyId: string;
  retentionDays: number;
}

export interface DecommissionResult {
  destroyedAt: string;
  retentionUntil: string;
  /**
   * The latest expires_at of the key's manifests this run declined as too close to expiry (left
   * active, unrevoked): the anchor keeps the key verify-only until then. Absent when none.
   */
  holdUntil?: string;
}

export interface AuditInput {
  /** Same key, same entry: a retried attempt finds the entry its first attempt wrote. */
  idempotencyKey?: string;
  actor: string;
  action: string;
  subject: string;
  details: Record<string, unknown>;
}

export interface NotifyInput {
  severity: 'info' | 'warning' | 'critical';
  text: string;
}

export interface RotationRecordInput {
  workflowId: string;
  runId: string;
  identity: string;
  trigger: Trigger;
  phase: string;
  oldKeyId?: string | null;
  newKeyId?: string | null;
  outcome?: string | null;
  ended: boolean;
}
