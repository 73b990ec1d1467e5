/**
 * Steering a running rotation. Every control is one entry of `CONTROLS`: the workflow update it
 * sends (src/workflows/controls.ts validates it), its words for `rotor rotate <control> --help`,
 * its own flags, and the one-line outcome. `controlRotation()` sends any of them, and the CLI
 * registers one command per entry, so a new control is one more entry here. The controls are the
 * workflow's validated updates: a refusal comes back with the workflow's own reason.
 */
import { type UpdateDefinition, WorkflowNotFoundError, WorkflowUpdateFailedError } from '@temporalio/client';
import { RotorError, UsageError } from '../errors';
import { parseTimestamp } from '../manifest';
import type { rotationWorkflow } from '../workflows/rotation';
import {
  abortUpdate,
  type ControlRequest,
  escalateUpdate,
  pauseUpdate,
  type RotationStatus,
  resumeUpdate,
  rollbackUpdate,
  rotationWorkflowId,
} from '../workflows/rotation-api';
import { describeRotation } from './status';
import { needingWorker, type RotationTemporal } from './temporal';

/** A request as the caller builds it: the common fields plus a control's own flags (resume's `force`). */
export type AnyControlRequest = ControlRequest & { [flag: string]: unknown };

export interface ControlSpec {
  /** The workflow update that carries it (its name is the workflow's; never renamed here). */
  update: UpdateDefinition<RotationStatus, [ControlRequest]>;
  /** One line for `rotor rotate <control> --help`. */
  description: string;
  /** Whether --reason must be given. */
  reasonRequired: boolean;
  /** What --reason is for, in the help. */
  reasonHelp: string;
  /**
   * Flags of this control alone; each sets the request field `field`. Without `parse` a flag is
   * boolean; with it, it takes a value (`flag` names it, as `--name <value>`) that `parse` checks
   * and converts, throwing a UsageError naming the flag.
   */
  flags?: readonly { flag: string; field: string; description: string; parse?: (raw: string) => unknown }[];
  /** What happened, in one line, after the workflow accepted it. */
  outcome(s: RotationStatus, request: AnyControlRequest): string;
}

const WHY = 'why (recorded in the audit log)';

/** In the order `rotor rotate --help` lists them. */
export const CONTROLS = {
  pause: {
    update: pauseUpdate,
    description: 'hold the rotation where it is (deadlines keep running; a due step runs on resume)',
    reasonRequired: false,
    reasonHelp: 'why (shown in status, recorded in the audit log)',
    outcome: (s) => `paused ${where(s)}: ${s.pauseReason}; resume with rotor rotate resume ${s.identity}`,
  },
  resume: {
    update: resumeUpdate,
    description: 'let a paused rotation go on',
    reasonRequired: false,
    reasonHelp: WHY,
    flags: [
      {
        flag: '--force',
        field: 'force',
        description:
          "only for a gate's own pause (adoption, acceptance or pickup bound, analysis tripped): go past that gate",
      },
    ],
    outcome: (s, r) =>
      `resumed ${where(s)}${r.force ? ', past the verifiers behind at the gate that paused it' : ''}`,
  },
  rollback: {
    update: rollbackUpdate,
    description:
      'keep the old key: re-sign with it, take the new key out of the anchor (only before revocation)',
    reasonRequired: true,
    reasonHelp: WHY,
    outcome: (s) =>
      `rollback of ${where(s)} accepted: the old key stays active, manifests re-signed with it, the new key leaves the anchor; ${watch(s)}`,
  },
  escalate: {
    update: escalateUpdate,
    description:
      'turn the running rotation into a key compromise from where it stands: the old key leaves the anchor and its manifests are revoked now',
    reasonRequired: true,
    reasonHelp: 'why (recorded in the audit log and the on-call notice)',
    flags: [
      {
        flag: '--trusted-before <iso8601>',
        field: 'trustedBefore',
        description:
          'when the key stopped being trusted: only manifests stored before it are re-issued, twins of later ones are revoked (default: when the rotation started)',
        parse: (raw) => parseTrustedBefore(raw, '--trusted-before'),
      },
    ],
    outcome: (s) =>
      `escalated ${where(s)} to a key compromise: the old key leaves the trust anchor and its manifests are revoked now, then re-issued${s.escalation?.trustedBefore ? ` if stored before ${s.escalation.trustedBefore}` : ''}; ${watch(s)}`,
  },
  abort: {
    update: abortUpdate,
    description:
      'stop the rotation: before revocation, undo what it did so far; on the compromise path, stop where it stands with the old key kept distrusted',
    reasonRequired: true,
    reasonHelp: WHY,
    outcome: (s) =>
      s.path === 'compromise'
        ? `abort of ${where(s)} accepted: the rotation stops where it stands and the old key stays distrusted (out of the anchor, never active again); ${watch(s)}`
        : `abort of ${where(s)} accepted: what was done so far is undone; ${watch(s)}`,
  },
} as const satisfies Record<string, ControlSpec>;

export type ControlKind = keyof typeof CONTROLS;

function where(s: RotationStatus): string {
  return `${s.workflowId} (phase ${s.phase})`;
}

function watch(s: RotationStatus): string {
  return `watch with rotor rotate status ${s.identity} --watch`;
}

/**
 * A compromise's trusted cut-off as an operator writes it (RFC 3339), in the one form the workflow
 * takes (`toISOString`); refused when unreadable or in the future, naming `flag`.
 */
export function parseTrustedBefore(raw: string, flag: string, nowMs = Date.now()): string {
  const at = parseTimestamp(raw);
  if (typeof at === 'string') throw new UsageError(`${flag}: ${at}`, 'ROTATION_CUTOFF');
  if (at.epochMs > nowMs) throw new UsageError(`${flag} must not be in the future`, 'ROTATION_CUTOFF');
  return new Date(at.epochMs).toISOString();
}

/** The checks made before anything is sent: a given --reason must say something. */
export function checkControlRequest(kind: ControlKind, request: AnyControlRequest): void {
  if (request.reason !== undefined && !request.reason.trim())
    throw new UsageError('--reason must not be empty', 'ROTATION_REASON');
  if (CONTROLS[kind].reasonRequired && request.reason === undefined)
    throw new UsageError(`${kind} needs --reason`, 'ROTATION_REASON');
}

/**
 * Sends control `kind` to the rotation of `identity`; resolves with the status the workflow
 * returned and the line that says what happened. A rotation that has ended, a workflow that
 * refuses, or one that ends meanwhile: RotorError `ROTATION_CONTROL_REFUSED` with the reason.
 */
export async function controlRotation(
  t: RotationTemporal,
  kind: ControlKind,
  identity: string,
  request: AnyControlRequest,
): Promise<{ status: RotationStatus; outcome: string }> {
  const spec: ControlSpec = CONTROLS[kind];
  checkControlRequest(kind, request);
  const workflowId = rotationWorkflowId(identity);
  const d = await describeRotation(t, workflowId);
  const handle = t.client.workflow.getHandle<typeof rotationWorkflow>(workflowId);
  if (d.status.name !== 'RUNNING') {
    const ended = d.status.name === 'COMPLETED' ? (await handle.result()).phase : d.status.name.toLowerCase();
    throw new RotorError(
      `${kind} refused: rotation ${workflowId} has ended (${ended})`,
      'ROTATION_CONTROL_REFUSED',
    );
  }
  let status: RotationStatus;
  try {
    status = await needingWorker(t, `the ${kind} update`, 30, () =>
      handle.executeUpdate(spec.update as UpdateDefinition<RotationStatus, [AnyControlRequest]>, {
        args: [request],
      }),
    );
  } catch (err) {
    if (err instanceof WorkflowUpdateFailedError) {
      throw new RotorError(
        `${kind} refused: ${err.cause?.message ?? err.message}`,
        'ROTATION_CONTROL_REFUSED',
      );
    }
    if (err instanceof WorkflowNotFoundError) {
      throw new RotorError(
        `${kind} refused: rotation ${workflowId} ended meanwhile`,
        'ROTATION_CONTROL_REFUSED',
      );
    }
    throw err;
  }
  return { status, outcome: spec.outcome(status, request) };
}
