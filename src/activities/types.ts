/**
 * Inputs and outputs of the rotation's activities. Plain JSON only: these travel through
 * Temporal's history, so they carry key ids, counts and reasons, never key material.
 */
import type { CustodianKind, Trigger } from '../workflows/policy';
import type { VerifierAdoption } from '../workflows/rotation-api';

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
  /** The policy's reissueAs; absent (histories from before it existed) means "0.2". */
  reissueAs?: '0.2' | 'same';
}

export interface ResignChunkResult {
  /** Twins written by this call. */
  resigned: number;
  /** Manifests that could not be re-issued, left untouched. */
  failed: { manifestId: string; reason: string }[];
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

export interface PublishAnchorInput {
  identity: string;
  activeKeyId: string;
  keys: AnchorKeyInput[];
}

export interface PublishAnchorResult {
  version: number;
  publishedAt: string;
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

export interface GateCheck {
  satisfied: boolean;
  mode: 'check-in' | 'cache-lifetime';
  verifiers: VerifierAdoption[];
  /** Verifier ids holding the rotation back. */
  behind: string[];
  detail: string;
}

export interface RevokeChunkInput {
  oldKeyId: string;
  signingKeyId: string;
  /** Which of the old key's manifests to revoke: `superseded` normally, `active` after a compromise. */
  status: 'active' | 'superseded';
  reason: string;
  limit: number;
  batchSize: number;
}

export interface RevokeChunkResult {
  revoked: number;
  remaining: number;
  crlSize: number;
}

export interface DecommissionInput {
  keyId: string;
  retentionDays: number;
}

export interface DecommissionResult {
  destroyedAt: string;
  retentionUntil: string;
}

export interface AuditInput {
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
