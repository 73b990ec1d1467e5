/**
 * The rotation workflow's public surface, declared once: its input, its status, and the updates
 * and query that the CLI, the worker and the tests share.
 */
import { defineQuery, defineUpdate } from '@temporalio/workflow';
import { type CustodianKind, SAMPLE_SIZE, type Trigger, type VerifierAdoption } from '../domain';
import type { RotationPolicy, StepName } from './policy';

export { SAMPLE_SIZE, type VerifierAdoption };

export const TASK_QUEUE_DEFAULT = 'rotor';

export function rotationWorkflowId(identity: string): string {
  return `rotation/${identity}`;
}

export interface RotationInput {
  identity: string;
  trigger: Trigger;
  /** Overrides of the trigger's default policy (offsets in seconds from t=0). */
  policy?: Partial<RotationPolicy>;
  /** Where the new key is generated. */
  custodian: CustodianKind;
  requestedBy: string;
  reason: string;
  /**
   * Compromise only: re-issue only manifests stored before this instant (ISO 8601); every later
   * one is declined and named. Default: the time the rotation starts.
   */
  trustedBefore?: string;
}

export type Phase =
  | 'preflight'
  | 'waiting'
  | 'keygen'
  | 're-sign'
  | 'publish-anchor'
  | 'await-adoption'
  | 'pre-revocation'
  | 'revoke'
  | 'decommission'
  | 'rolling-back'
  | 'completed'
  | 'rolled-back'
  | 'aborted'
  | 'failed'
  | 'skipped';

export interface TimelineEntry {
  step: StepName;
  /** ISO times; `actual*` are unset until the step starts or ends. */
  plannedAt: string;
  actualStart?: string;
  actualEnd?: string;
  /** Left out: the rotation took another path (an escalation) before this step began. */
  skipped?: boolean;
  note?: string;
}

export interface Progress {
  done: number;
  total: number;
}

/**
 * Why the rotation is paused. Only a gate's own pause (`adoption`, `acceptance`, `pickup`,
 * `analysis`) can be forced past; `retrying` is a step that keeps failing and is retried by
 * itself meanwhile.
 */
export type PauseKind =
  | 'operator'
  | 'step-failed'
  | 'retrying'
  | 'unresignable'
  | 'adoption'
  | 'acceptance'
  | 'pickup'
  | 'analysis'
  | 'undo-failed';

export interface PauseState {
  kind: PauseKind;
  reason: string;
  since: string;
}

export interface RotationStatus {
  workflowId: string;
  identity: string;
  /** What started the rotation. */
  trigger: Trigger;
  /** The path it is on: an escalated rotation of any trigger is on the compromise path. */
  path: 'overlap' | 'compromise';
  phase: Phase;
  paused: boolean;
  pauseReason?: string;
  pause?: PauseState;
  escalation?: {
    reason: string;
    by: string;
    at: string;
    fromPhase: Phase;
    /** The cut-off the operator gave with the escalation (`EscalateRequest.trustedBefore`). */
    trustedBefore?: string;
  };
  startedAt: string;
  endedAt?: string;
  oldKeyId?: string;
  newKeyId?: string;
  anchorVersion?: number;
  timeline: TimelineEntry[];
  progress: { resign: Progress; revoke: Progress; rollback: Progress };
  /** What holds the rotation back now, in words. */
  blockers: string[];
  /**
   * Verifiers at the last gate check: counts, and a sample (those behind first). The full list is
   * the verifier store (`rotor verifier list`).
   */
  adoption: {
    mode: 'check-in' | 'cache-lifetime' | 'pending';
    live: number;
    behind: number;
    checkedAt?: string;
    verifiers: VerifierAdoption[];
  };
  /**
   * A sample (at most SAMPLE_SIZE) of the manifests declined for re-issue, with reasons. The full
   * list is in Postgres (`rotation_declined`, `rotor rotate unresignable`): never an unbounded list.
   */
  unresignable: { manifestId: string; reason: string }[];
  /** The pickup and analysis gates before revocation, at their last check: counts and a sample. */
  gates?: PreRevocationGates;
  /** How many manifests were declined for re-issue in all. */
  unresignableCount: number;
  /** Twins that carry their original's log entry as prior_transparency_log_entry (spec 2.2). */
  withPriorLogEntry?: number;
  /** Why it ended, for rolled-back, aborted, failed and skipped rotations. */
  outcome?: string;
  policy: RotationPolicy;
}

export interface PreRevocationGates {
  checkedAt: string;
  pickup: {
    /** 'not-in-use': no delivery credential or webhook exists; 'disabled' by policy or a force. */
    mode: 'fetch' | 'not-in-use' | 'disabled';
    satisfied: boolean;
    twins: number;
    pickedUp: number;
    seenNotPickedUp: number;
    neverSeen: number;
    /** Agents seen fetching but still on their original: at most SAMPLE_SIZE. */
    behind: string[];
    detail: string;
  };
  analysis: {
    enabled: boolean;
    tripped: boolean;
    windowSeconds: number;
    results: number;
    rejections: number;
    rate: number;
    /** Rejections by key role and reason, e.g. {"new/unknown_key": 12}: a bounded map. */
    byReason: Record<string, number>;
    detail: string;
  };
}

export interface ControlRequest {
  reason?: string;
  /** Who asks; recorded in the audit log. */
  by?: string;
}

export interface EscalateRequest extends ControlRequest {
  /**
   * The compromise's trusted cut-off, as an instant `YYYY-MM-DDTHH:MM:SS.sssZ` not in the future:
   * only manifests stored before it are re-issued, and twins the overlap made of later ones are
   * revoked. Default: when the rotation started (a start's own `trustedBefore` for a compromise).
   */
  trustedBefore?: string;
}

export interface ResumeRequest extends ControlRequest {
  /** Go past the gate that paused the rotation (only that gate, only while it is that pause). */
  force?: boolean;
}

/** The controls, as validated updates: a validator refuses what cannot be honoured, with the reason. */
export const pauseUpdate = defineUpdate<RotationStatus, [ControlRequest]>('pauseRotation');
export const resumeUpdate = defineUpdate<RotationStatus, [ResumeRequest]>('resumeRotation');
export const rollbackUpdate = defineUpdate<RotationStatus, [ControlRequest]>('rollbackRotation');
export const abortUpdate = defineUpdate<RotationStatus, [ControlRequest]>('abortRotation');
export const escalateUpdate = defineUpdate<RotationStatus, [EscalateRequest]>('escalateRotation');

export const statusQuery = defineQuery<RotationStatus>('status');
