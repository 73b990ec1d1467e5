/**
 * The rotation workflow's public surface, declared once: its input, its status, and the signals,
 * updates and query that the CLI, the worker and the tests share.
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { CustodianKind, RotationPolicy, StepName, Trigger } from './policy';

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
  note?: string;
}

export interface Progress {
  done: number;
  total: number;
}

export interface VerifierAdoption {
  verifierId: string;
  anchorVersion: number | null;
  lastSeen: string;
  adopted: boolean;
  acceptedNewKey: boolean;
}

export interface RotationStatus {
  workflowId: string;
  identity: string;
  trigger: Trigger;
  phase: Phase;
  paused: boolean;
  pauseReason?: string;
  startedAt: string;
  endedAt?: string;
  oldKeyId?: string;
  newKeyId?: string;
  anchorVersion?: number;
  timeline: TimelineEntry[];
  progress: { resign: Progress; revoke: Progress; rollback: Progress };
  /** What holds the rotation back now, in words. */
  blockers: string[];
  adoption: { mode: 'check-in' | 'cache-lifetime' | 'pending'; verifiers: VerifierAdoption[] };
  /**
   * A sample (at most 10) of the manifests declined for re-issue, with reasons. The full list is
   * in Postgres (`rotation_declined`, `rotor rotate declined`): never an unbounded list here.
   */
  unresignable: { manifestId: string; reason: string }[];
  /** How many manifests were declined for re-issue in all (absent on rotations before it existed). */
  unresignableCount?: number;
  /** Twins that carry their original's log entry as prior_transparency_log_entry (spec 2.2). */
  withPriorLogEntry?: number;
  /** Why it ended, for rolled-back, aborted, failed and skipped rotations. */
  outcome?: string;
  policy: RotationPolicy;
}

export interface ControlRequest {
  reason?: string;
  /** Who asks; recorded in the audit log. */
  by?: string;
}

export interface ResumeRequest extends ControlRequest {
  /** Resume past verifiers that have not adopted the new anchor: revocation may hit them. */
  force?: boolean;
}

export const pauseSignal = defineSignal<[ControlRequest]>('pause');
export const resumeSignal = defineSignal<[ResumeRequest]>('resume');
export const rollbackSignal = defineSignal<[ControlRequest]>('rollback');
export const abortSignal = defineSignal<[ControlRequest]>('abort');

/** The same controls as updates: validators refuse what cannot be honoured, with the reason. */
export const pauseUpdate = defineUpdate<RotationStatus, [ControlRequest]>('pauseRotation');
export const resumeUpdate = defineUpdate<RotationStatus, [ResumeRequest]>('resumeRotation');
export const rollbackUpdate = defineUpdate<RotationStatus, [ControlRequest]>('rollbackRotation');
export const abortUpdate = defineUpdate<RotationStatus, [ControlRequest]>('abortRotation');

export const statusQuery = defineQuery<RotationStatus>('status');
