/**
 * An operator's controls on a running rotation, in one place: pause, resume (and its scoped
 * force), rollback, abort and escalate, what each refuses and why, and the waiting they cause.
 * Modelled on Temporal's safe-message-handlers sample: one table of validated updates, handlers
 * that only change state (and write their audit entry), and the runbook that reacts at its
 * checkpoints.
 *
 * Deterministic code only (workflow sandbox).
 */
import type { UpdateDefinition } from '@temporalio/common';
import { CancellationScope, condition, isCancellation, setHandler } from '@temporalio/workflow';
import {
  abortUpdate,
  type ControlRequest,
  type EscalateRequest,
  escalateUpdate,
  type PauseKind,
  pauseUpdate,
  type ResumeRequest,
  type RotationStatus,
  resumeUpdate,
  rollbackUpdate,
} from './rotation-api';

/** Any control's request: the common fields and each control's own (resume's force, escalate's cut-off). */
export type AnyControlRequest = ResumeRequest & EscalateRequest;

/**
 * Why an escalation's cut-off cannot be taken, or undefined. It arrives in an update from any
 * client, so it is checked here and not only by the CLI: one exact instant form (what
 * `Date.prototype.toISOString` writes, so the value recorded is the value compared), never later
 * than the workflow's now (a cut-off in the future would trust manifests the thief may still sign).
 */
function cutoffProblem(value: unknown, nowMs: number): string | undefined {
  const ms = typeof value === 'string' ? Date.parse(value) : Number.NaN;
  if (Number.isNaN(ms) || new Date(ms).toISOString() !== value) {
    return `trustedBefore must be an instant written YYYY-MM-DDTHH:MM:SS.sssZ, got ${JSON.stringify(value)?.slice(0, 60)}`;
  }
  if (ms > nowMs)
    return `trustedBefore ${value} is in the future: the cut-off is when the key stopped being trusted`;
  return undefined;
}

export type InterruptKind = 'rollback' | 'abort' | 'escalate';
export type ControlName = 'pause' | 'resume' | InterruptKind;

/** Thrown at a runbook checkpoint when an operator asked to roll back, abort or escalate. */
export class Interrupted extends Error {
  constructor(readonly kind: InterruptKind) {
    super(kind);
    this.name = 'Interrupted';
  }
}

/**
 * The only pauses a forced resume may end: a gate's own pause (verifiers behind at the adoption
 * or acceptance bound, agents behind at the pickup bound, the analysis gate tripped).
 */
const FORCEABLE: readonly PauseKind[] = ['adoption', 'acceptance', 'pickup', 'analysis'];

const ENDED = ['completed', 'rolled-back', 'aborted', 'failed', 'skipped'];

export class RotationControls {
  /** A rollback, abort or escalation asked for and not yet taken up by the runbook. */
  interrupt?: { kind: InterruptKind; request: AnyControlRequest };
  /** The gate a forced resume lets through; it applies to that gate's current pause only. */
  private forced?: PauseKind;
  /** Overlap path: the old key's manifests are being revoked; there is no way back from here. */
  revocationStarted = false;
  /** The old key's destruction has started: escalation no longer changes anything. */
  oldKeyDestroyStarted = false;
  /** A rollback or abort is being carried out. */
  undoing?: 'rollback' | 'abort';

  constructor(
    private readonly status: RotationStatus,
    /** Writes the audit entry of an accepted control. */
    private readonly onAccepted: (control: ControlName, request: AnyControlRequest) => Promise<void>,
    /** Now, in workflow time (ms). */
    private readonly now: () => number,
  ) {}

  // ---- the table ---------------------------------------------------------------------------------

  /** Registers every control from one table: each is an update whose validator is `refuse`. */
  register(): void {
    const table: [ControlName, UpdateDefinition<RotationStatus, [AnyControlRequest]>][] = [
      ['pause', pauseUpdate],
      ['resume', resumeUpdate],
      ['rollback', rollbackUpdate],
      ['abort', abortUpdate],
      ['escalate', escalateUpdate],
    ];
    for (const [name, update] of table) {
      setHandler(
        update,
        async (req) => {
          this.apply(name, req ?? {});
          await this.onAccepted(name, req ?? {});
          return this.status;
        },
        {
          validator: (req) => {
            const why = this.refuse(name, req ?? {});
            if (why) throw new Error(why);
          },
        },
      );
    }
  }

  /** Why `control` cannot be honoured now, in words; undefined when it can. */
  refuse(control: ControlName, req: AnyControlRequest): string | undefined {
    const s = this.status;
    if (this.ended()) return `the rotation has ended (${s.phase})`;
    // While undoing, only a resume of a failed undo step is taken.
    if (this.undoing && !(control === 'resume' && s.pause?.kind === 'undo-failed'))
      return `a ${this.undoing} is under way`;
    switch (control) {
      case 'pause':
        if (this.holding()) return `the rotation is already paused: ${s.pause!.reason}`;
        return undefined;
      case 'resume':
        if (!s.pause) return 'the rotation is not paused';
        if (req.force && !FORCEABLE.includes(s.pause.kind))
          return `--force applies only to a gate's own pause (adoption, acceptance or pickup bound, analysis tripped); this pause is '${s.pause.kind}': ${s.pause.reason}. Resume without --force`;
        return undefined;
      case 'rollback':
      case 'abort':
        if (this.interrupt) return `a ${this.interrupt.kind} is already under way`;
        if (control === 'rollback' && s.path === 'compromise')
          return 'a compromised key is never restored; roll forward with a new rotation';
        if (s.path === 'overlap' && this.revocationStarted)
          return "the old key's manifests are revoked; roll forward with a new rotation";
        // Decommission is the last step and the old key is out of every anchor by then: stopping it
        // would only leave a distrusted private key alive. Without this refusal an abort accepted
        // while the step retries is silently overtaken when the attempt succeeds.
        if (this.oldKeyDestroyStarted)
          return `the old key is already being destroyed (the last step); nothing is left to ${control === 'abort' ? 'abort' : 'roll back'}: the rotation completes once that step succeeds`;
        if (!req.reason?.trim()) return `a${control === 'abort' ? 'n' : ''} ${control} needs a reason`;
        return undefined;
      case 'escalate':
        if (this.interrupt) return `a ${this.interrupt.kind} is already under way`;
        if (s.path === 'compromise')
          return s.escalation
            ? `the rotation was already escalated to the compromise path at ${s.escalation.at}`
            : 'the rotation is already a compromise rotation';
        if (s.phase === 'preflight')
          return 'the preflight is still running; escalate once it has passed (seconds), nothing has changed yet';
        if (this.oldKeyDestroyStarted)
          return 'the old key is already being destroyed and leaves the anchor as this step ends; nothing is left to escalate';
        if (!req.reason?.trim()) return 'an escalation needs a reason';
        if (req.trustedBefore !== undefined) return cutoffProblem(req.trustedBefore, this.now());
        return undefined;
    }
  }

  private apply(control: ControlName, req: AnyControlRequest): void {
    switch (control) {
      case 'pause':
        this.pauseFor('operator', req.reason ?? 'paused by an operator');
        return;
      case 'resume':
        if (req.force) this.forced = this.status.pause!.kind;
        this.clearPause();
        return;
      default:
        // Taken up at the runbook's next checkpoint: between chunks, in a wait, in a gate.
        this.interrupt = { kind: control, request: req };
    }
  }

  // ---- state ---------------------------------------------------------------------------------------

  ended(): boolean {
    return ENDED.includes(this.status.phase);
  }

  /** Paused in a way that holds the runbook: every kind but `retrying`, which retries by itself. */
  holding(): boolean {
    return this.status.pause !== undefined && this.status.pause.kind !== 'retrying';
  }

  pauseFor(kind: PauseKind, reason: string): void {
    this.status.pause = { kind, reason, since: new Date(this.now()).toISOString() };
    this.status.paused = true;
    this.status.pauseReason = reason;
  }

  /** Ends the pause (only if it is of `kind`, when given). */
  clearPause(kind?: PauseKind): void {
    if (kind && this.status.pause?.kind !== kind) return;
    this.status.pause = undefined;
    this.status.paused = false;
    this.status.pauseReason = undefined;
  }

  /** True once, if a forced resume ended `gate`'s own pause. */
  takeForce(gate: PauseKind): boolean {
    const forced = this.forced === gate;
    this.forced = undefined;
    return forced;
  }

  /**
   * The runbook's own request (the analysis gate's automatic rollback): taken like an operator's,
   * if the same control would be accepted now. Returns why not, when refused.
   */
  request(kind: InterruptKind, request: ControlRequest): string | undefined {
    const why = this.refuse(kind, request);
    if (!why) this.interrupt = { kind, request };
    return why;
  }

  /** The pending interrupt, handed to the runbook (which carries it out). */
  take(): { kind: InterruptKind; request: AnyControlRequest } {
    const taken = this.interrupt!;
    this.interrupt = undefined;
    if (taken.kind !== 'escalate') this.undoing = taken.kind;
    return taken;
  }

  // ---- waiting -------------------------------------------------------------------------------------

  /** A runbook checkpoint: throws `Interrupted` when a rollback, abort or escalation is pending. */
  checkpoint(): void {
    if (this.interrupt) throw new Interrupted(this.interrupt.kind);
  }

  /** Holds while paused. Pausing never moves a deadline: a step whose time passed runs on resume. */
  async holdIfPaused(): Promise<void> {
    this.checkpoint();
    if (this.holding()) await condition(() => !this.holding() || this.interrupt !== undefined);
    this.checkpoint();
  }

  /** A durable timer to `ms` (workflow time), cut short by an interrupt; then holds if paused. */
  async sleepUntil(ms: number): Promise<void> {
    this.checkpoint();
    const left = Math.ceil(ms - this.now());
    if (left > 0) await condition(() => this.interrupt !== undefined, left);
    await this.holdIfPaused();
  }

  /**
   * Runs `fn` (a long wait on an activity) in a scope that an interrupt, or a forced resume of
   * `gate`'s pause, cancels. Returns undefined when a force cut it short.
   */
  async cancellableWait<T>(gate: PauseKind, fn: () => Promise<T>): Promise<T | undefined> {
    this.checkpoint();
    const work = new CancellationScope();
    const watch = new CancellationScope();
    const cut = () => this.interrupt !== undefined || this.forced === gate;
    watch
      .run(() => condition(cut))
      .then(
        () => work.cancel(),
        () => {},
      );
    try {
      return await work.run(fn);
    } catch (err) {
      if (!isCancellation(err)) throw err;
      this.checkpoint();
      if (this.forced === gate) return undefined;
      throw err;
    } finally {
      watch.cancel();
    }
  }
}
