/**
 * The machinery under the runbook in `rotation.ts`: the rotation's status, its activities and
 * their timeouts and retries, `runStep` (timeline entry, audit entry, pause on failure), the key
 * switches, the gates, and what rollback, abort and escalation do. `rotation.ts` reads as the
 * runbook's timeline because everything here keeps out of its way.
 *
 * Deterministic code only (workflow sandbox): time is workflow time, all I/O is in activities.
 */

import { RetryState, TimeoutType } from '@temporalio/common';
import {
  ActivityFailure,
  ApplicationFailure,
  allHandlersFinished,
  condition,
  isCancellation,
  log,
  proxyActivities,
  setHandler,
  TimeoutFailure,
  workflowInfo,
} from '@temporalio/workflow';
import type { RotationActivities } from '../activities';
import type { PreRevocationCheck } from '../activities/pre-revocation';
import type { AnchorKeyInput, GateCheck, ResignChunkResult, SwitchKeysInput } from '../activities/types';
import { Interrupted, RotationControls } from './controls';
import { COMPROMISE_STEPS, plannedSteps, type RotationPolicy, resolvePolicy, type StepName } from './policy';
import {
  type ControlRequest,
  type EscalateRequest,
  type PauseKind,
  type Phase,
  type Progress,
  type RotationInput,
  type RotationStatus,
  SAMPLE_SIZE,
  statusQuery,
  type TimelineEntry,
} from './rotation-api';

/**
 * Retried without an attempt cap, backing off to a minute between attempts: a Postgres failover
 * or an HSM restart is waited out. What can never succeed comes back non-retryable at once (see
 * `src/activities/index.ts`). A step still failing after `policy.stepAlertSeconds` (the
 * schedule-to-close timeout) pauses the rotation and alerts, and is tried again by itself.
 */
const RETRY = { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute' } as const;

function rotationActivities(policy: RotationPolicy) {
  const alertMs = policy.stepAlertSeconds * 1000;
  const heartbeatTimeout = policy.heartbeatTimeoutSeconds * 1000;
  const sliceMs = policy.gateSliceSeconds * 1000;
  return {
    /** Chunked re-sign and revoke: they heartbeat, so a lost worker is replaced within the heartbeat timeout. */
    long: proxyActivities<RotationActivities>({
      startToCloseTimeout: '10 minutes',
      heartbeatTimeout,
      scheduleToCloseTimeout: Math.max(alertMs, heartbeatTimeout * 2),
      retry: RETRY,
    }),
    /** One transaction or one custodian call each: a start-to-close of two minutes fits them. */
    short: proxyActivities<RotationActivities>({
      startToCloseTimeout: '2 minutes',
      // Never shorter than one reasonable attempt: a slow preflight is not a failing one.
      scheduleToCloseTimeout: Math.max(alertMs, 10_000),
      retry: RETRY,
    }),
    /** A verifier gate, polled inside the activity for up to one slice, heartbeating each poll. */
    gate: proxyActivities<RotationActivities>({
      startToCloseTimeout: sliceMs + 120_000,
      heartbeatTimeout,
      scheduleToCloseTimeout: sliceMs + alertMs,
      retry: RETRY,
    }),
    /** The audit log and the rotations table must get every entry: retried until Postgres answers. */
    bookkeeping: proxyActivities<RotationActivities>({
      startToCloseTimeout: '1 minute',
      retry: RETRY,
    }),
    /** A notification is worth a few tries, not a stuck rotation. */
    notifier: proxyActivities<RotationActivities>({
      startToCloseTimeout: '30 seconds',
      retry: { initialInterval: '1 second', maximumInterval: '10 seconds', maximumAttempts: 3 },
    }),
  };
}

type Switch = 'dual' | 'distrust' | 'final' | 'restore';

export class RotationRun {
  readonly policy: RotationPolicy;
  readonly status: RotationStatus;
  readonly controls: RotationControls;
  private readonly acts: ReturnType<typeof rotationActivities>;
  private readonly workflowId: string;
  private readonly runId: string;
  private readonly t0: number;
  private auditSeq = 0;
  /** A key switch has been attempted: the anchor may list the new key (and may lack the old one). */
  private anchorSwitched = false;
  /** The compromise switch (old key out of the anchor, retired) is committed. */
  private distrusted = false;
  private anchorPublishedAt?: string;
  /** The re-sign pass last begun (statuses, keys, which progress): tells a retry of it from a new pass. */
  private resignPass?: string;
  private readonly gatesPassed = new Set<'adoption' | 'acceptance' | 'pre-revocation'>();

  constructor(readonly input: RotationInput) {
    this.policy = resolvePolicyOrFail(input);
    this.acts = rotationActivities(this.policy);
    ({ workflowId: this.workflowId, runId: this.runId } = workflowInfo());
    this.t0 = Date.now();
    this.status = {
      workflowId: this.workflowId,
      identity: input.identity,
      trigger: input.trigger,
      path: input.trigger === 'compromise' ? 'compromise' : 'overlap',
      phase: 'preflight',
      paused: false,
      startedAt: iso(this.t0),
      timeline: plannedSteps(input.trigger, this.policy).map(({ step, atSeconds }) => ({
        step,
        plannedAt: iso(this.t0 + atSeconds * 1000),
      })),
      progress: {
        resign: { done: 0, total: 0 },
        revoke: { done: 0, total: 0 },
        rollback: { done: 0, total: 0 },
      },
      blockers: [],
      adoption: { mode: 'pending', live: 0, behind: 0, verifiers: [] },
      unresignableCount: 0,
      unresignable: [],
      policy: this.policy,
    };
    this.controls = new RotationControls(
      this.status,
      (control, req) =>
        this.audit(`${control}-requested`, {
          reason: req.reason,
          by: req.by ?? this.input.requestedBy,
          force: req.force,
          phase: this.status.phase,
        }),
      () => Date.now(),
    );
    this.controls.register();
    setHandler(statusQuery, () => this.status);
  }

  get oldKey(): string {
    return this.status.oldKeyId!;
  }
  get newKey(): string {
    return this.status.newKeyId!;
  }

  // ---- running the runbook -------------------------------------------------------------------------

  /**
   * Runs the runbook, then whatever an interrupt asks for: an escalation continues on the
   * compromise path from where the rotation stands; a rollback or abort ends it.
   */
  async conclude(
    runbook: () => Promise<RotationStatus>,
    compromisePath: () => Promise<RotationStatus>,
  ): Promise<RotationStatus> {
    try {
      return await runbook();
    } catch (err) {
      if (!(err instanceof Interrupted)) {
        if (isCancellation(err)) throw err;
        await this.finish('failed', failureMessage(err)).catch((bookkeepingErr: unknown) => {
          // The step's own failure is what the workflow reports; a failed bookkeeping write after
          // it is only logged, so it cannot mask the cause.
          log.error('recording the failed rotation failed', { error: failureMessage(bookkeepingErr) });
        });
        throw err;
      }
      const { kind, request } = this.controls.take();
      if (kind === 'escalate') {
        await this.escalate(request);
        return this.conclude(compromisePath, compromisePath);
      }
      return this.interrupted(kind, request);
    }
  }

  /**
   * One runbook step: its timeline entry (in the policy's order, or the workflow stops), its audit
   * entry, and what a failure does. A failure that can never succeed pauses for a person (resume
   * retries). A step that keeps failing past `policy.stepAlertSeconds` pauses and alerts, and goes
   * on by itself as soon as an attempt succeeds.
   */
  async runStep<T>(
    step: StepName,
    fn: () => Promise<T>,
    details: (result: T) => Record<string, unknown> = (result) =>
      typeof result === 'object' && result !== null ? (result as Record<string, unknown>) : {},
  ): Promise<T> {
    await this.controls.holdIfPaused();
    const entry = this.beginEntry(step);
    this.status.phase = step;
    entry.actualStart ??= iso(Date.now());
    for (;;) {
      try {
        const result = await fn();
        if (this.status.pause?.kind === 'retrying') {
          this.controls.clearPause('retrying');
          this.status.blockers = [];
          await this.audit('step-recovered', { step });
        }
        entry.actualEnd = iso(Date.now());
        await this.audit(step, details(result));
        return result;
      } catch (err) {
        if (err instanceof Interrupted || isCancellation(err)) throw err;
        const message = failureMessage(err);
        if (retriedTooLong(err)) {
          this.status.blockers = [`${step} keeps failing: ${message}`];
          if (this.status.pause?.kind !== 'retrying') {
            this.controls.pauseFor(
              'retrying',
              `${step} has failed for over ${this.policy.stepAlertSeconds} s; retrying by itself, it goes on once it succeeds`,
            );
            await this.notify(
              'critical',
              `rotor: rotation ${this.workflowId}: ${step} keeps failing: ${message}`,
            );
            await this.audit('step-failing', { step, error: message });
          }
          await this.controls.holdIfPaused();
          continue;
        }
        this.status.blockers = [`${step} failed: ${message}`];
        this.controls.pauseFor(
          'step-failed',
          `${step} failed; resume to retry${this.controls.revocationStarted || this.status.path === 'compromise' ? '' : ', or roll back'}`,
        );
        await this.notify(
          'critical',
          `rotor: rotation ${this.workflowId} paused: ${step} failed: ${message}`,
        );
        await this.audit('step-failed', { step, error: message });
        await this.controls.holdIfPaused();
        this.status.blockers = [];
      }
    }
  }

  /** The next timeline entry must be `step`: the step order lives in the policy only. */
  private beginEntry(step: StepName): TimelineEntry {
    const next = this.status.timeline.find((e) => !e.actualEnd && !e.skipped);
    if (next?.step !== step) {
      // A code change that runs steps out of the policy's order: stop before doing anything.
      throw ApplicationFailure.nonRetryable(
        `runbook out of order: ${step} before ${next?.step ?? 'the end'} (policy.plannedSteps)`,
        'RunbookOrder',
      );
    }
    return next;
  }

  /** Waits for `step`'s planned time (workflow time); an interrupt cuts the wait short. */
  async waitFor(step: StepName): Promise<void> {
    const entry = this.status.timeline.find((e) => e.step === step && !e.actualEnd && !e.skipped)!;
    const due = Date.parse(entry.plannedAt);
    if (Date.now() < due) {
      this.status.phase = 'waiting';
      this.status.blockers = [`waiting for t=${entry.plannedAt} before ${step}`];
    }
    await this.controls.sleepUntil(due);
    this.status.blockers = [];
  }

  // ---- the steps -----------------------------------------------------------------------------------

  /** The checklist; a rotation that must not go on ends here (returned), before t=0. */
  async preflight(): Promise<RotationStatus | undefined> {
    const pre = await this.runStep(
      'preflight',
      () =>
        this.acts.short.preflight({
          workflowId: this.workflowId,
          identity: this.input.identity,
          trigger: this.input.trigger,
          custodian: this.input.custodian,
          allowSoftwareCustodian: this.policy.allowSoftwareCustodian,
          minKeyAgeDays: this.policy.minKeyAgeDays,
          requestedBy: this.input.requestedBy,
          reason: this.input.reason,
        }),
      (p) => ({ gates: p.gates, activeManifests: p.activeManifests }),
    );
    this.status.oldKeyId = pre.oldKeyId;
    this.status.anchorVersion = pre.anchorVersion;
    if (pre.skip) return this.finish('skipped', pre.skip);
    if (!pre.ok || !pre.oldKeyId) {
      const failed = pre.gates.filter((g) => !g.ok).map((g) => `${g.name}: ${g.detail}`);
      return this.finish('failed', `preflight refused: ${failed.join('; ')}`);
    }
    this.status.progress.resign.total = pre.activeManifests;
    return undefined;
  }

  /** t=0: the new key, generated inside the target custodian, registered `pending`. */
  async keygen(): Promise<void> {
    await this.runStep(
      'keygen',
      async () => {
        const generated = await this.acts.short.generateKey({
          workflowId: this.workflowId,
          runId: this.runId,
          identity: this.input.identity,
          custodian: this.input.custodian,
        });
        this.status.newKeyId = generated.keyId;
        return generated;
      },
      (g) => ({ newKeyId: g.keyId, custodian: g.custodian, where: g.summary }),
    );
  }

  /** Re-issues every matching manifest of `from` with `to`, chunk by chunk, recording progress. */
  async resign(
    manifestStatus: 'active' | 'revoked',
    progress: Progress,
    from = this.oldKey,
    to = this.newKey,
  ): Promise<Record<string, unknown>> {
    const counted = await this.acts.short.countManifests({
      keyId: from,
      status: manifestStatus,
      withoutSuccessor: manifestStatus === 'revoked',
    });
    // A step retried after failing past stepAlertSeconds (`runStep`) runs this pass again: the
    // manifests it already re-issued are no longer candidates, so the first count stays the total
    // (test/faults/postgres.test.ts: 400 re-issued were reported as 390 of 390).
    const pass = `${manifestStatus} ${from} ${to} ${progress === this.status.progress.rollback}`;
    progress.total = this.resignPass === pass ? Math.max(progress.total, counted) : counted;
    this.resignPass = pass;
    const forward = to === this.newKey;
    if (forward) {
      // Each forward pass looks at every candidate again (after an escalation, the revoked ones):
      // the count is this pass's, not a sum over passes.
      this.status.unresignableCount = 0;
      this.status.unresignable = [];
    }
    let cursor: string | null = null;
    let failed = 0;
    for (;;) {
      const chunk: ResignChunkResult = await this.acts.long.resignChunk({
        workflowId: this.workflowId,
        fromKeyId: from,
        toKeyId: to,
        status: manifestStatus,
        afterManifestId: cursor,
        limit: this.policy.chunkSize,
        batchSize: this.policy.batchSize,
        // The version each re-issue gets (v0.1 is no longer issued upstream); a history recorded
        // before the field existed replays unchanged: the activity reads its absence as "0.2".
        reissueAs: this.policy.reissueAs,
        // Compromise: only manifests stored before the operator's cut-off (default: the start)
        // are trusted; one revoked before the rotation began stays revoked.
        ...(manifestStatus === 'revoked'
          ? {
              trustedBefore: this.trustedCutoff(),
              rotationStartedAt: this.status.startedAt,
            }
          : {}),
      });
      failed += chunk.declinedCount;
      this.status.unresignableCount += chunk.declinedCount;
      if (forward)
        this.status.withPriorLogEntry = (this.status.withPriorLogEntry ?? 0) + chunk.withPriorLogEntry;
      const room = SAMPLE_SIZE - this.status.unresignable.length;
      if (room > 0) this.status.unresignable.push(...chunk.failed.slice(0, room));
      // Derived from what is left rather than summed: a batch committed just before a worker died
      // is in the store but in no heartbeat, and must still count as done.
      progress.done = Math.max(0, progress.total - chunk.remaining - failed);
      cursor = chunk.cursor;
      if (chunk.remaining === 0 || cursor === null) break;
      await this.controls.holdIfPaused();
    }
    return {
      resigned: progress.done,
      unresignable: this.status.unresignableCount,
      declinedSample: this.status.unresignable,
      withPriorLogEntry: this.status.withPriorLogEntry ?? 0,
    };
  }

  /** Overlap path: manifests that could not be re-issued hold the rotation before the anchor changes. */
  async holdForUnresignable(): Promise<void> {
    const n = this.status.unresignableCount;
    if (n === 0 || !this.policy.blockOnUnresignable) return;
    this.status.blockers = [
      `${n} manifest(s) could not be re-issued; the status lists ${Math.min(n, SAMPLE_SIZE)}, rotor rotate unresignable lists all`,
    ];
    this.controls.pauseFor(
      'unresignable',
      'manifests that cannot be re-issued block the rotation (policy blockOnUnresignable)',
    );
    await this.notify(
      'warning',
      `rotor: rotation ${this.workflowId} paused: ${n} manifest(s) could not be re-issued`,
    );
    await this.controls.holdIfPaused();
    this.status.blockers = [];
  }

  /**
   * Which key signs and which keys the anchor lists, switched in one transaction with
   * compare-and-set on the anchor version (activity `switchKeys`):
   * - dual: new key active, old retiring, both in the anchor (overlap path, t=5m);
   * - distrust: new key active, old retired and out of the anchor (compromise path);
   * - final: the anchor after the old key's destruction (verify-only until retention, if kept);
   * - restore: the old key active again, the new one quarantined (rollback; overlap path only).
   */
  async switchAnchor(
    kind: Switch,
    destroyed?: { retentionUntil: string; holdUntil?: string },
  ): Promise<Record<string, unknown>> {
    const [oldKey, newKey] = [this.oldKey, this.newKey];
    if (kind === 'restore' && (this.status.path === 'compromise' || this.distrusted)) {
      // Point 1 of the runbook's compromise rules: a distrusted key never comes back.
      throw ApplicationFailure.nonRetryable(
        `refusing to restore distrusted key ${oldKey}`,
        'CompromiseRestore',
      );
    }
    // After destruction the old key stays in the anchor, verify-only: until its retention date by
    // policy, and at least until the last manifest too close to expiry to re-issue has expired
    // (`holdUntil`, README "Manifests near expiry"; those manifests were left active, unrevoked).
    const holdUntil = destroyed?.holdUntil;
    const keepOld =
      kind === 'final' && this.status.path === 'overlap' && (this.policy.keepOldKeyInAnchor || !!holdUntil);
    const oldValidUntil =
      this.policy.keepOldKeyInAnchor &&
      destroyed &&
      (!holdUntil || Date.parse(destroyed.retentionUntil) > Date.parse(holdUntil))
        ? destroyed.retentionUntil
        : holdUntil;
    const plans: Record<Switch, Omit<SwitchKeysInput, 'identity' | 'expectedAnchorVersion'>> = {
      dual: {
        activeKeyId: newKey,
        transitions: [
          { keyId: oldKey, to: 'retiring' },
          { keyId: newKey, to: 'active' },
        ],
        anchorKeys: [
          { keyId: newKey, status: 'active' },
          { keyId: oldKey, status: 'retiring' },
        ],
      },
      distrust: {
        activeKeyId: newKey,
        transitions: [
          { keyId: oldKey, to: 'retired' },
          { keyId: newKey, to: 'active' },
        ],
        anchorKeys: [{ keyId: newKey, status: 'active' }],
      },
      final: {
        activeKeyId: newKey,
        transitions: [],
        anchorKeys: [
          { keyId: newKey, status: 'active' },
          ...(keepOld
            ? [{ keyId: oldKey, status: 'verify-only', validUntil: oldValidUntil } as AnchorKeyInput]
            : []),
        ],
      },
      restore: {
        activeKeyId: oldKey,
        transitions: [
          { keyId: newKey, to: 'quarantined' },
          { keyId: oldKey, to: 'active' },
        ],
        anchorKeys: [{ keyId: oldKey, status: 'active' }],
      },
    };
    this.anchorSwitched = true;
    const switched = await this.acts.short.switchKeys({
      identity: this.input.identity,
      expectedAnchorVersion: this.status.anchorVersion ?? 0,
      ...plans[kind],
      // Stragglers re-issued inside the switch get the version the re-sign pass gives.
      reissueAs: this.policy.reissueAs,
    });
    this.status.anchorVersion = switched.version;
    this.anchorPublishedAt = switched.publishedAt;
    if (kind === 'distrust') this.distrusted = true;
    return { version: switched.version, keys: plans[kind].anchorKeys.map((k) => k.keyId) };
  }

  /**
   * Waits until every live verifier has adopted the new anchor (`adoption`) or accepted a
   * manifest of the new key (`acceptance`). Polled inside one activity per slice (history grows
   * per slice, not per poll). Past the bound, verifiers seen to be behind pause the rotation and
   * alert; that pause ends by itself when they catch up, or a forced resume goes past them.
   */
  async gate(gate: 'adoption' | 'acceptance'): Promise<Record<string, unknown>> {
    // A step retried after its gate passed (a later activity of the step failed) does not wait again.
    if (this.gatesPassed.has(gate)) return { passed: 'earlier' };
    const result = await this.watchGate(gate);
    this.gatesPassed.add(gate);
    return result;
  }

  private async watchGate(gate: 'adoption' | 'acceptance'): Promise<Record<string, unknown>> {
    const p = this.policy;
    const window = Math.max(p.pollSeconds, p.adoptBySeconds - p.resignAtSeconds) * 1000;
    let bound = gate === 'adoption' ? this.at(p.adoptBySeconds) : this.at(p.decommissionAtSeconds) + window;
    const watch =
      gate === 'adoption'
        ? {
            gate,
            identity: this.input.identity,
            version: this.status.anchorVersion!,
            publishedAt: this.anchorPublishedAt!,
            livenessSeconds: p.verifierLivenessSeconds,
            anchorMaxAgeSeconds: p.anchorMaxAgeSeconds,
            marginSeconds: p.adoptionMarginSeconds,
          }
        : {
            gate,
            identity: this.input.identity,
            keyId: this.newKey,
            livenessSeconds: p.verifierLivenessSeconds,
          };
    let first = true;
    let alerted = false;
    let pausedHere = false;
    try {
      for (;;) {
        const own = () => this.status.pause?.kind === gate;
        if (pausedHere && !own() && !this.controls.interrupt) {
          // Resumed without --force: watch another full window before pausing again.
          pausedHere = false;
          bound = Date.now() + window;
        }
        if (!own()) await this.controls.holdIfPaused();
        const now = Date.now();
        // The first look reports at once, so the status shows who is behind from the start.
        const until = first
          ? now
          : !own() && bound > now
            ? Math.min(bound, now + p.gateSliceSeconds * 1000)
            : now + p.gateSliceSeconds * 1000;
        first = false;
        const check: GateCheck | undefined = await this.controls.cancellableWait(gate, () =>
          this.acts.gate.watchGate({ ...watch, pollSeconds: p.pollSeconds, untilMs: until }),
        );
        if (check) this.showGate(check);
        if (check?.satisfied) {
          if (own()) {
            this.controls.clearPause(gate);
            await this.audit(`${gate}-caught-up`, { live: check.live });
          }
          this.status.blockers = [];
          return { mode: check.mode, live: check.live };
        }
        if (check) this.status.blockers = [check.detail];
        if (this.controls.takeForce(gate)) {
          await this.audit(`${gate}-forced`, {
            behind: this.status.adoption.behind,
            sample: this.status.adoption.verifiers
              .filter((v) => !v.adopted || !v.acceptedNewKey)
              .map((v) => v.verifierId),
          });
          this.status.blockers = [];
          return { mode: this.status.adoption.mode, forced: true, behind: this.status.adoption.behind };
        }
        if (check && !own() && Date.now() >= bound && check.behindCount > 0) {
          pausedHere = true;
          this.controls.pauseFor(
            gate,
            `${gate} bound passed: ${check.detail}. The pause ends by itself once they catch up; resume --force goes past them`,
          );
          if (!alerted) {
            alerted = true;
            await this.notify(
              'critical',
              `rotor: rotation ${this.workflowId} paused at the ${gate} bound: ${check.detail}`,
            );
            await this.audit(`${gate}-bound`, { behind: check.behindCount, sample: check.behind });
          }
        }
      }
    } finally {
      // A force belongs to this gate's pause: it never carries over to a later gate.
      this.controls.takeForce(gate);
    }
  }

  private showGate(check: GateCheck): void {
    this.status.adoption = {
      mode: check.mode,
      live: check.live,
      behind: check.behindCount,
      checkedAt: check.checkedAt,
      verifiers: check.verifiers,
    };
  }

  /**
   * The two gates between the release of the twins and revocation (issue 14; README "pickup and
   * analysis gates"). Until revocation is due, the analysis gate watches what verifiers reject;
   * from then on the pickup gate waits for the agents, the analysis still watching. Both are
   * polled inside one heartbeating activity per slice, like the verifier gates, and report counts
   * plus a sample. A tripped analysis pauses `analysis` (or, by policy, rolls back on its own);
   * agents still behind at the pickup bound pause `pickup`, which ends by itself once they pick up.
   * `resume --force` goes past the gate that paused, and only that one.
   */
  async preRevocationGates(): Promise<Record<string, unknown>> {
    if (this.gatesPassed.has('pre-revocation')) return { passed: 'earlier' };
    const p = this.policy;
    const revokeAt = this.at(p.revokeAtSeconds);
    const grace = p.pickupGraceSeconds * 1000;
    const slice = p.gateSliceSeconds * 1000;
    let pickupBound = revokeAt + grace;
    let analysisOn = p.analysisGate;
    let pickupOn = p.pickupGate;
    /** After a plain resume of a tripped analysis, rejections count from the resume on. */
    let analysisSince: number | undefined;
    let pickupPausedHere = false;
    let pickupAlerted = false;
    let first = true;
    const own = (kind: PauseKind) => this.status.pause?.kind === kind;
    try {
      for (;;) {
        if (pickupPausedHere && !own('pickup') && !this.controls.interrupt) {
          // Resumed without --force: another full grace before pausing again.
          pickupPausedHere = false;
          pickupBound = Date.now() + grace;
        }
        if (!own('pickup')) await this.controls.holdIfPaused();
        const now = Date.now();
        const due = now >= revokeAt;
        if (!due && !analysisOn) {
          // Nothing to watch before revocation: a plain timer, no activity.
          this.status.blockers = [`waiting for t=${iso(revokeAt)} before revoke`];
          await this.controls.sleepUntil(revokeAt);
          continue;
        }
        if (due && !pickupOn) break;
        // The first look reports at once, so the status shows both gates from the start.
        const until = first
          ? now
          : !due
            ? Math.min(revokeAt, now + slice)
            : !own('pickup') && pickupBound > now
              ? Math.min(pickupBound, now + slice)
              : now + slice;
        first = false;
        const check: PreRevocationCheck | undefined = await this.controls.cancellableWait('pickup', () =>
          this.acts.gate.watchPreRevocation({
            identity: this.input.identity,
            oldKeyId: this.oldKey,
            newKeyId: this.newKey,
            untilMs: until,
            returnWhenPickedUp: due,
            pollSeconds: p.pollSeconds,
            pickup: {
              enabled: pickupOn,
              deliveryMaxAgeSeconds: p.deliveryMaxAgeSeconds,
              marginSeconds: p.pickupMarginSeconds,
            },
            analysis: {
              enabled: analysisOn,
              sinceMs: analysisSince,
              windowSeconds: p.analysisWindowSeconds,
              maxRejections: p.analysisMaxRejections,
              maxRejectionRate: p.analysisMaxRejectionRate,
              minResults: p.analysisMinResults,
            },
          }),
        );
        if (this.controls.takeForce('pickup')) {
          const g = this.status.gates?.pickup;
          pickupOn = false;
          this.status.blockers = [];
          await this.audit('pickup-forced', {
            pickedUp: g?.pickedUp,
            seenNotPickedUp: g?.seenNotPickedUp,
            neverSeen: g?.neverSeen,
            sample: g?.behind,
          });
          continue;
        }
        if (!check) continue;
        this.showGates(check);
        const a = check.analysis;
        if (a.tripped) {
          const figures = {
            rejections: a.rejections,
            results: a.results,
            rate: a.rate,
            byReason: a.byReason,
            windowSeconds: a.windowSeconds,
          };
          this.status.blockers = [a.detail];
          await this.audit('analysis-tripped', figures);
          if (p.analysisRollback) {
            const request = {
              reason: `automatic rollback by the analysis gate: ${a.detail}`,
              by: 'rotor analysis gate',
            };
            // Refused only where a rollback no longer applies (one already under way): then pause.
            if (this.controls.request('rollback', request) === undefined) {
              await this.audit('rollback-requested', { ...request, phase: this.status.phase });
              await this.notify(
                'critical',
                `rotor: rotation ${this.workflowId} rolling back on its own before revocation: ${a.detail}`,
              );
              this.controls.checkpoint();
            }
          }
          this.controls.pauseFor(
            'analysis',
            `${a.detail}. Nothing is revoked; resume counts afresh from then, resume --force goes past this gate, or roll back`,
          );
          await this.notify(
            'critical',
            `rotor: rotation ${this.workflowId} paused before revocation: ${a.detail}`,
          );
          await this.controls.holdIfPaused();
          this.status.blockers = [];
          if (this.controls.takeForce('analysis')) {
            analysisOn = false;
            await this.audit('analysis-forced', figures);
          } else {
            analysisSince = Date.now();
          }
          continue;
        }
        if (!due) {
          this.status.blockers = [`waiting for t=${iso(revokeAt)} before revoke (${a.detail})`];
          continue;
        }
        const pickup = check.pickup;
        if (pickup.satisfied) {
          if (own('pickup')) {
            this.controls.clearPause('pickup');
            await this.audit('pickup-caught-up', { pickedUp: pickup.pickedUp, twins: pickup.twins });
          }
          break;
        }
        this.status.blockers = [`pickup: ${pickup.detail}`];
        if (!own('pickup') && Date.now() >= pickupBound && pickup.seenNotPickedUp + pickup.neverSeen > 0) {
          pickupPausedHere = true;
          this.controls.pauseFor(
            'pickup',
            `pickup bound passed: ${pickup.detail}. The pause ends by itself once they pick up; resume --force goes past them`,
          );
          if (!pickupAlerted) {
            pickupAlerted = true;
            await this.notify(
              'critical',
              `rotor: rotation ${this.workflowId} paused at the pickup bound: ${pickup.detail}`,
            );
            await this.audit('pickup-bound', {
              twins: pickup.twins,
              pickedUp: pickup.pickedUp,
              seenNotPickedUp: pickup.seenNotPickedUp,
              neverSeen: pickup.neverSeen,
              sample: pickup.behind,
            });
          }
        }
      }
    } finally {
      // A force belongs to this gate's pause: it never carries over to a later gate.
      this.controls.takeForce('pickup');
    }
    this.status.blockers = [];
    this.gatesPassed.add('pre-revocation');
    const g = this.status.gates;
    return {
      pickup: pickupOn
        ? {
            mode: g?.pickup.mode,
            twins: g?.pickup.twins,
            pickedUp: g?.pickup.pickedUp,
            neverSeen: g?.pickup.neverSeen,
          }
        : 'off',
      analysis: analysisOn ? { results: g?.analysis.results, rejections: g?.analysis.rejections } : 'off',
    };
  }

  private showGates(check: PreRevocationCheck): void {
    const { neverSeenWaiting: _waiting, ...pickup } = check.pickup;
    this.status.gates = { checkedAt: check.checkedAt, pickup, analysis: check.analysis };
  }

  /** One signed revocation record per manifest of the old key in `statuses`. No way back (overlap path). */
  async revoke(statuses: ('active' | 'superseded')[]): Promise<Record<string, unknown>> {
    if (this.status.path === 'overlap') this.controls.revocationStarted = true;
    const [oldKey, newKey] = [this.oldKey, this.newKey];
    const progress = this.status.progress.revoke;
    let left = 0;
    for (const status of statuses) left += await this.acts.short.countManifests({ keyId: oldKey, status });
    progress.total = progress.done + left;
    const reason =
      this.status.path === 'compromise'
        ? `Key compromise - old key_id=${oldKey}`
        : `Key rotation - old key_id=${oldKey}`;
    // An escalated rotation may have re-issued, during its overlap, manifests stored after the
    // compromise's trusted cut-off (default: the rotation's start); their twins go too.
    const distrust = this.status.escalation ? { distrustTwinsStoredFrom: this.trustedCutoff() } : {};
    let untrustedTwins = 0;
    for (const status of statuses) {
      for (;;) {
        const chunk = await this.acts.long.revokeChunk({
          oldKeyId: oldKey,
          signingKeyId: newKey,
          status,
          reason,
          limit: this.policy.chunkSize,
          batchSize: this.policy.batchSize,
          // Stragglers re-issued before revoking get the version the re-sign pass gives.
          reissueAs: this.policy.reissueAs,
          ...distrust,
        });
        progress.done += chunk.revoked;
        untrustedTwins += chunk.untrustedTwins ?? 0;
        if (chunk.remaining === 0) break;
        await this.controls.holdIfPaused();
      }
    }
    return { revoked: progress.done, ...(untrustedTwins > 0 ? { untrustedTwins } : {}) };
  }

  /** The old private key destroyed in its custodian; its public key archived until retention ends. */
  async destroyOldKey() {
    this.controls.oldKeyDestroyStarted = true;
    return this.acts.short.decommissionKey({ keyId: this.oldKey, retentionDays: this.policy.retentionDays });
  }

  /**
   * Lets `rotor serve` hand agents the manifests `keyId` signed (src/activities/delivery.ts): the
   * runbook's "deploy new manifests before updating verifiers" in the safe order.
   */
  async releaseDelivery(
    keyId: string,
    anchorVersion: number | null,
    reason: string,
    withdrawKeyIds: string[] = [],
  ): Promise<void> {
    const released = await this.acts.long.releaseDelivery({
      identity: this.input.identity,
      keyId,
      anchorVersion,
      workflowId: this.workflowId,
      reason,
      withdrawKeyIds,
    });
    await this.audit('delivery-released', {
      keyId,
      anchorVersion,
      twins: released.twins,
      webhook: released.webhook,
    });
  }

  // ---- escalation, rollback, abort -------------------------------------------------------------------

  /**
   * The compromise's trusted cut-off (README "On-call: a compromise found during a rotation"): the
   * one given with the escalation, else the compromise start's, else when the rotation started.
   */
  private trustedCutoff(): string {
    return this.status.escalation?.trustedBefore ?? this.input.trustedBefore ?? this.status.startedAt;
  }

  /** From here on the rotation is a compromise rotation: what is left of the timeline is its steps. */
  private async escalate(request: EscalateRequest): Promise<void> {
    const at = iso(Date.now());
    const by = request.by ?? this.input.requestedBy;
    this.status.escalation = {
      reason: request.reason ?? 'escalated',
      by,
      at,
      fromPhase: this.status.phase,
      ...(request.trustedBefore === undefined ? {} : { trustedBefore: request.trustedBefore }),
    };
    this.status.path = 'compromise';
    // Whatever held the overlap path (a gate, unresignable manifests, an operator) no longer applies.
    this.controls.clearPause();
    this.status.blockers = [];
    for (const e of this.status.timeline) {
      if (e.actualEnd || e.step === 'preflight' || e.step === 'keygen') continue;
      if (e.actualStart) {
        e.actualEnd = at;
        e.note = 'cut short: escalated to compromise';
      } else {
        e.skipped = true;
        e.note = 'skipped: escalated to compromise';
      }
    }
    for (const step of COMPROMISE_STEPS)
      this.status.timeline.push({ step, plannedAt: at, note: 'compromise path' });
    await this.audit('escalated', {
      reason: request.reason,
      by,
      fromPhase: this.status.escalation.fromPhase,
      trustedBefore: this.trustedCutoff(),
    });
    await this.notify(
      'critical',
      `rotor: rotation ${this.workflowId} escalated to a key compromise by ${by}: ${request.reason}; the old key leaves the trust anchor and its manifests are revoked now`,
    );
  }

  /**
   * Rollback or abort. Overlap path: the old key stays; manifests the new key signed get
   * successors signed by the old key, the new key leaves the anchor and is destroyed. Compromise
   * path: a key once distrusted is never trusted again, so an abort there stops where it stands.
   */
  private async interrupted(kind: 'rollback' | 'abort', request: ControlRequest): Promise<RotationStatus> {
    const why = request.reason ?? kind;
    const ended = kind === 'abort' ? 'aborted' : 'rolled-back';
    this.controls.clearPause();
    this.status.blockers = [];
    if (!this.status.newKeyId)
      return this.finish(ended, `${why}; ended before a new key was registered: nothing changed`);
    if (this.status.path === 'compromise' && this.anchorSwitched) return this.stopHere(why);
    this.status.phase = 'rolling-back';
    await this.undoStep(async () => {
      if (this.status.path === 'overlap') {
        // Always looked for, not only when progress says so: a batch can be committed by a step
        // attempt that then failed, and a twin signed by the new key must not outlive it.
        await this.resign('active', this.status.progress.rollback, this.newKey, this.oldKey);
        // Every verifier trusts the old key throughout: its successors go out at once, the new
        // key's twins no longer do.
        await this.releaseDelivery(this.oldKey, null, `${this.controls.undoing}: the old key stays`, [
          this.newKey,
        ]);
      }
      if (this.anchorSwitched) await this.switchAnchor('restore');
      else await this.acts.short.setKeyState({ keyId: this.newKey, to: 'quarantined' });
      await this.acts.short.decommissionKey({ keyId: this.newKey, retentionDays: this.policy.retentionDays });
    });
    const outcome =
      this.status.path === 'compromise'
        ? `${why}; aborted before the old key was distrusted: only the new key was made, and it is destroyed`
        : why;
    await this.notify('warning', `rotor: rotation ${this.workflowId} ${ended}: ${why}`);
    return this.finish(ended, outcome);
  }

  /** Compromise path abort: stop here, and make sure the old key is out of the anchor and retired. */
  private async stopHere(why: string): Promise<RotationStatus> {
    await this.undoStep(async () => {
      if (!this.distrusted) await this.switchAnchor('distrust');
    });
    const { revoke, resign } = this.status.progress;
    const outcome =
      `${why}; stopped on the compromise path: key ${this.oldKey.slice(0, 12)}… stays out of the trust anchor and retired (never active again); ` +
      `${revoke.done} of its manifest(s) revoked, ${resign.done} re-issued so far`;
    await this.notify('warning', `rotor: rotation ${this.workflowId} aborted: ${outcome}`);
    return this.finish('aborted', outcome);
  }

  /** Compensation retries until it succeeds: a half-done rollback is worse than a slow one. */
  private async undoStep(fn: () => Promise<void>): Promise<void> {
    for (;;) {
      try {
        await fn();
        return;
      } catch (err) {
        if (isCancellation(err)) throw err;
        const message = failureMessage(err);
        this.status.blockers = [`${this.controls.undoing ?? 'undo'} failed: ${message}; resume to retry`];
        this.controls.pauseFor('undo-failed', `${this.controls.undoing ?? 'undo'} step failed`);
        await this.notify(
          'critical',
          `rotor: ${this.controls.undoing ?? 'undo'} of ${this.workflowId} failed: ${message}`,
        );
        await condition(() => !this.controls.holding());
        this.status.blockers = [];
      }
    }
  }

  // ---- bookkeeping ---------------------------------------------------------------------------------

  async finish(phase: Phase, outcome?: string): Promise<RotationStatus> {
    const s = this.status;
    s.phase = phase;
    s.outcome = outcome;
    this.controls.clearPause();
    s.blockers = [];
    s.endedAt = iso(Date.now());
    await this.record(outcome);
    await this.audit(phase, { outcome, oldKeyId: s.oldKeyId, newKeyId: s.newKeyId });
    // An accepted control may still be writing its audit entry.
    await condition(allHandlersFinished);
    return s;
  }

  async record(outcome?: string): Promise<void> {
    await this.acts.bookkeeping.recordRotation({
      workflowId: this.workflowId,
      runId: this.runId,
      identity: this.input.identity,
      trigger: this.input.trigger,
      phase: this.status.phase,
      oldKeyId: this.status.oldKeyId ?? null,
      newKeyId: this.status.newKeyId ?? null,
      outcome: outcome ?? null,
      ended: this.controls.ended(),
    });
  }

  /** An audit entry, written once however often the activity is retried (idempotency key). */
  async audit(action: string, details: Record<string, unknown>): Promise<void> {
    const seq = ++this.auditSeq;
    await this.acts.bookkeeping.recordAudit({
      idempotencyKey: `${this.workflowId}/${this.runId}#${seq}:${action}`,
      actor: this.input.requestedBy,
      action: `rotation.${action}`,
      subject: this.workflowId,
      details: {
        identity: this.input.identity,
        trigger: this.input.trigger,
        path: this.status.path,
        ...details,
      },
    });
  }

  async notify(severity: 'info' | 'warning' | 'critical', text: string): Promise<void> {
    try {
      await this.acts.notifier.notifyOnCall({ severity, text });
    } catch (err) {
      // An unreachable webhook must not stop a rotation; the audit log still has the record.
      log.warn('on-call notice not delivered', { severity, error: failureMessage(err) });
    }
  }

  at(seconds: number): number {
    return this.t0 + seconds * 1000;
  }
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

function resolvePolicyOrFail(input: RotationInput): RotationPolicy {
  try {
    return resolvePolicy(input.trigger, input.policy);
  } catch (err) {
    throw ApplicationFailure.nonRetryable(err instanceof Error ? err.message : String(err), 'InvalidPolicy');
  }
}

/**
 * The activity ran out of time being retried (schedule-to-close): its dependency is still failing.
 * The server then reports the last attempt's failure with retry state TIMEOUT, or a timeout.
 */
function retriedTooLong(err: unknown): boolean {
  if (!(err instanceof ActivityFailure)) return false;
  if (err.retryState === RetryState.TIMEOUT) return true;
  return err.cause instanceof TimeoutFailure && err.cause.timeoutType === TimeoutType.SCHEDULE_TO_CLOSE;
}

/** The innermost message: an activity's own error rather than the failure wrapping it. */
export function failureMessage(err: unknown): string {
  let e: unknown = err;
  while ((e instanceof ActivityFailure || e instanceof TimeoutFailure) && e.cause) e = e.cause;
  if (e instanceof TimeoutFailure) return `timed out (${e.timeoutType ?? 'unknown'})`;
  return e instanceof Error ? e.message : String(e);
}
