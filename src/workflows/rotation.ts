/**
 * The key rotation runbook as a durable workflow. Read top to bottom, it is the runbook's timeline:
 * preflight, t=0 keygen, t=5m re-sign and publish the dual-key anchor, await verifier adoption,
 * t=35m revoke the old key's manifests, t=1h decommission the old key. A compromise runs the
 * steps at once with revocation first; a rollback keeps the old key.
 *
 * Deterministic code only: time is workflow time, all I/O is in activities.
 */
import {
  ActivityFailure,
  ApplicationFailure,
  condition,
  isCancellation,
  log,
  patched,
  proxyActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { RotationActivities } from '../activities';
import type { GateCheck, ResignChunkResult } from '../activities/types';
import { plannedSteps, type RotationPolicy, resolvePolicy, type StepName } from './policy';
import {
  abortSignal,
  abortUpdate,
  type ControlRequest,
  type Phase,
  pauseSignal,
  pauseUpdate,
  type ResumeRequest,
  type RotationInput,
  type RotationStatus,
  resumeSignal,
  resumeUpdate,
  rollbackSignal,
  rollbackUpdate,
  statusQuery,
} from './rotation-api';

/**
 * Steps retry a few times on their own; a step that still fails pauses the rotation for a person.
 * A worker that dies mid-step is noticed when its heartbeats stop, and another worker resumes the
 * step from the last heartbeat's cursor.
 */
function stepActivities(policy: RotationPolicy) {
  return proxyActivities<RotationActivities>({
    startToCloseTimeout: '10 minutes',
    heartbeatTimeout: policy.heartbeatTimeoutSeconds * 1000,
    retry: {
      initialInterval: '1 second',
      backoffCoefficient: 2,
      maximumInterval: '30 seconds',
      maximumAttempts: 5,
    },
  });
}

// The audit log and the rotations table must get every entry: retried until Postgres answers.
const bookkeeping = proxyActivities<RotationActivities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds' },
});

// A notification is worth a few tries, not a stuck rotation.
const notifier = proxyActivities<RotationActivities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '10 seconds', maximumAttempts: 3 },
});

/** patched() id of manifest delivery's release steps (issue 14). */
const DELIVERY_PATCH = 'i14-manifest-delivery';

/** Thrown inside the workflow when an operator asked to roll back or abort. */
class Interrupted extends Error {
  constructor(readonly kind: 'rollback' | 'abort') {
    super(kind);
  }
}

export async function rotationWorkflow(input: RotationInput): Promise<RotationStatus> {
  const policy: RotationPolicy = resolvePolicyOrFail(input);
  const steps = stepActivities(policy);
  const { workflowId, runId } = workflowInfo();
  const t0 = Date.now();
  const at = (seconds: number) => t0 + seconds * 1000;
  const iso = (ms: number) => new Date(ms).toISOString();
  const compromise = input.trigger === 'compromise';

  const status: RotationStatus = {
    workflowId,
    identity: input.identity,
    trigger: input.trigger,
    phase: 'preflight',
    paused: false,
    startedAt: iso(t0),
    timeline: plannedSteps(input.trigger, policy).map(({ step, atSeconds }) => ({
      step,
      plannedAt: iso(at(atSeconds)),
    })),
    progress: {
      resign: { done: 0, total: 0 },
      revoke: { done: 0, total: 0 },
      rollback: { done: 0, total: 0 },
    },
    blockers: [],
    adoption: { mode: 'pending', verifiers: [] },
    unresignable: [],
    policy,
  };
  let interrupt: { kind: 'rollback' | 'abort'; request: ControlRequest } | undefined;
  let forcePastVerifiers = false;
  let revocationStarted = false;
  let rollingBack = false;
  const ended = () => ['completed', 'rolled-back', 'aborted', 'failed', 'skipped'].includes(status.phase);

  // ---- controls --------------------------------------------------------------------------------

  const refuseRollback = (kind: 'rollback' | 'abort'): string | undefined => {
    if (ended()) return `the rotation has ended (${status.phase})`;
    if (interrupt) return `a ${interrupt.kind} is already under way`;
    if (revocationStarted) return "the old key's manifests are revoked; roll forward with a new rotation";
    if (kind === 'rollback' && compromise)
      return 'a compromised key is never restored; roll forward with a new rotation';
    return undefined;
  };
  const pause = (req: ControlRequest) => {
    status.paused = true;
    status.pauseReason = req.reason ?? 'paused by an operator';
  };
  const resume = (req: ResumeRequest) => {
    status.paused = false;
    status.pauseReason = undefined;
    if (req.force) forcePastVerifiers = true;
  };
  const requestInterrupt = (kind: 'rollback' | 'abort', req: ControlRequest) => {
    interrupt = { kind, request: req };
  };

  setHandler(statusQuery, () => status);
  setHandler(pauseSignal, (req) => {
    if (!ended()) pause(req);
  });
  setHandler(resumeSignal, (req) => {
    if (status.paused) resume(req);
  });
  setHandler(rollbackSignal, (req) => {
    if (!refuseRollback('rollback')) requestInterrupt('rollback', req);
  });
  setHandler(abortSignal, (req) => {
    if (!refuseRollback('abort')) requestInterrupt('abort', req);
  });
  setHandler(
    pauseUpdate,
    (req) => {
      pause(req);
      return status;
    },
    {
      validator: (_req) => {
        if (ended()) throw new Error(`the rotation has ended (${status.phase})`);
        if (status.paused) throw new Error('the rotation is already paused');
      },
    },
  );
  setHandler(
    resumeUpdate,
    (req) => {
      resume(req);
      return status;
    },
    {
      validator: (_req) => {
        if (!status.paused) throw new Error('the rotation is not paused');
      },
    },
  );
  setHandler(
    rollbackUpdate,
    (req) => {
      requestInterrupt('rollback', req);
      return status;
    },
    {
      validator: (req) => {
        const why = refuseRollback('rollback');
        if (why) throw new Error(why);
        if (!req?.reason) throw new Error('a rollback needs a reason');
      },
    },
  );
  setHandler(
    abortUpdate,
    (req) => {
      requestInterrupt('abort', req);
      return status;
    },
    {
      validator: (req) => {
        const why = refuseRollback('abort');
        if (why) throw new Error(why);
        if (!req?.reason) throw new Error('an abort needs a reason');
      },
    },
  );

  // ---- waiting ---------------------------------------------------------------------------------

  const interruptPending = () => interrupt !== undefined && !revocationStarted && !rollingBack;
  const checkInterrupt = () => {
    if (interruptPending()) throw new Interrupted(interrupt!.kind);
  };
  /** Holds while paused. Pausing never moves a deadline: a step whose time passed runs on resume. */
  const holdIfPaused = async () => {
    checkInterrupt();
    if (status.paused) await condition(() => !status.paused || interruptPending());
    checkInterrupt();
  };
  /** A durable timer to `ms` (workflow time), cut short by a rollback or abort. */
  const waitUntil = async (ms: number, phase: Phase) => {
    checkInterrupt();
    if (Date.now() < ms) {
      status.phase = 'waiting';
      status.blockers = [`waiting for t=${iso(ms)} before ${phase}`];
      await condition(interruptPending, ms - Date.now());
      status.blockers = [];
    }
    await holdIfPaused();
  };

  const timelineEntry = (step: StepName) => status.timeline.find((e) => e.step === step)!;
  const audit = async (action: string, details: Record<string, unknown>) => {
    await bookkeeping.recordAudit({
      actor: input.requestedBy,
      action: `rotation.${action}`,
      subject: workflowId,
      details: { identity: input.identity, trigger: input.trigger, ...details },
    });
  };
  const notify = async (severity: 'info' | 'warning' | 'critical', text: string) => {
    try {
      await notifier.notifyOnCall({ severity, text });
    } catch (err) {
      // An unreachable webhook must not stop a rotation; the audit log still has the record.
      log.warn('on-call notice not delivered', { severity, error: failureMessage(err) });
    }
  };
  const record = async (outcome?: string) => {
    await bookkeeping.recordRotation({
      workflowId,
      runId,
      identity: input.identity,
      trigger: input.trigger,
      phase: status.phase,
      oldKeyId: status.oldKeyId ?? null,
      newKeyId: status.newKeyId ?? null,
      outcome: outcome ?? null,
      ended: ended(),
    });
  };

  /**
   * Runs one runbook step. A step whose activity still fails after its retries pauses the rotation
   * with the failure as the blocker: resume retries it; rollback (where allowed) undoes the rotation.
   */
  const runStep = async <T>(step: StepName, phase: Phase, fn: () => Promise<T>): Promise<T> => {
    await holdIfPaused();
    status.phase = phase;
    const entry = timelineEntry(step);
    entry.actualStart ??= iso(Date.now());
    for (;;) {
      try {
        const result = await fn();
        entry.actualEnd = iso(Date.now());
        return result;
      } catch (err) {
        if (err instanceof Interrupted || isCancellation(err)) throw err;
        const message = failureMessage(err);
        status.blockers = [`${step} failed: ${message}`];
        pause({ reason: `${step} failed; resume to retry${revocationStarted ? '' : ', or roll back'}` });
        await notify('critical', `rotor: rotation ${workflowId} paused: ${step} failed: ${message}`);
        await audit('step-failed', { step, error: message });
        await holdIfPaused();
        status.blockers = [];
      }
    }
  };

  /** Re-issues every matching manifest of `from` with `to`, chunk by chunk, recording progress. */
  const resignAll = async (
    from: string,
    to: string,
    manifestStatus: 'active' | 'revoked',
    progress: { done: number; total: number },
  ) => {
    progress.total = await steps.countManifests({
      keyId: from,
      status: manifestStatus,
      withoutSuccessor: manifestStatus === 'revoked',
    });
    let cursor: string | null = null;
    let failed = 0;
    for (;;) {
      const chunk: ResignChunkResult = await steps.resignChunk({
        workflowId,
        fromKeyId: from,
        toKeyId: to,
        status: manifestStatus,
        afterManifestId: cursor,
        limit: policy.chunkSize,
        batchSize: policy.batchSize,
        reissueAs: policy.reissueAs,
      });
      status.unresignable.push(...chunk.failed);
      failed += chunk.failed.length;
      // Derived from what is left rather than summed: a batch committed just before a worker died
      // is in the store but in no heartbeat, and must still count as done.
      progress.done = Math.max(0, progress.total - chunk.remaining - failed);
      cursor = chunk.cursor;
      if (chunk.remaining === 0 || cursor === null) break;
      await holdIfPaused();
    }
  };

  const revokeAll = async (oldKeyId: string, newKeyId: string, manifestStatus: 'active' | 'superseded') => {
    revocationStarted = true;
    status.progress.revoke.total = await steps.countManifests({ keyId: oldKeyId, status: manifestStatus });
    const reason = compromise
      ? `Key compromise - old key_id=${oldKeyId}`
      : `Key rotation - old key_id=${oldKeyId}`;
    for (;;) {
      const chunk = await steps.revokeChunk({
        oldKeyId,
        signingKeyId: newKeyId,
        status: manifestStatus,
        reason,
        limit: policy.chunkSize,
        batchSize: policy.batchSize,
      });
      status.progress.revoke.done += chunk.revoked;
      if (chunk.remaining === 0) break;
      // Revocation is never rolled back, but an operator may still hold it between chunks.
      if (status.paused) await condition(() => !status.paused);
    }
  };

  /** Polls a verifier gate until it is satisfied; at `boundMs` pauses and alerts instead of going on. */
  const awaitGate = async (
    gate: 'adoption' | 'acceptance',
    check: () => Promise<GateCheck>,
    boundMs: number,
  ) => {
    let bound = boundMs;
    let alerted = false;
    for (;;) {
      const result = await check();
      status.adoption = { mode: result.mode, verifiers: result.verifiers };
      if (result.satisfied) {
        status.blockers = [];
        return result;
      }
      status.blockers = [result.detail];
      if (forcePastVerifiers) {
        forcePastVerifiers = false;
        await audit(`${gate}-forced`, { behind: result.behind, by: 'operator resume --force' });
        status.blockers = [];
        return result;
      }
      // Only a verifier seen to be behind holds the rotation at the bound; with no verifier
      // checking in, the wait is the cache lifetime, which ends by itself.
      if (Date.now() >= bound && result.behind.length > 0) {
        pause({ reason: `${gate} bound passed: ${result.detail}` });
        if (!alerted) {
          alerted = true;
          await notify(
            'critical',
            `rotor: rotation ${workflowId} paused at the ${gate} bound: ${result.detail}`,
          );
          await audit(`${gate}-bound`, { behind: result.behind });
        }
        await holdIfPaused();
        // Resumed without --force: keep polling for another full window before pausing again.
        bound =
          Date.now() + Math.max(policy.pollSeconds, policy.adoptBySeconds - policy.resignAtSeconds) * 1000;
        continue;
      }
      await condition(interruptPending, policy.pollSeconds * 1000);
      await holdIfPaused();
    }
  };

  /**
   * Lets `rotor serve` hand agents the manifests `keyId` signed (store/delivery.ts). Behind a
   * patch: histories recorded before manifest delivery existed replay without this step.
   */
  const releaseDelivery = async (
    keyId: string,
    anchorVersion: number | null,
    reason: string,
    withdrawKeyIds: string[] = [],
  ) => {
    if (!patched(DELIVERY_PATCH)) return;
    const released = await steps.releaseDelivery({
      identity: input.identity,
      keyId,
      anchorVersion,
      workflowId,
      reason,
      withdrawKeyIds,
    });
    await audit('delivery-released', {
      keyId,
      anchorVersion,
      twins: released.twins,
      webhook: released.webhook,
    });
  };

  const finish = async (phase: Phase, outcome?: string) => {
    status.phase = phase;
    status.outcome = outcome;
    status.paused = false;
    status.pauseReason = undefined;
    status.blockers = [];
    status.endedAt = iso(Date.now());
    await record(outcome);
    await audit(phase, { outcome, oldKeyId: status.oldKeyId, newKeyId: status.newKeyId });
    return status;
  };

  // ---- the runbook -----------------------------------------------------------------------------

  let oldKeyId: string | undefined;
  let newKeyId: string | undefined;
  try {
    await record();
    const pre = await runStep('preflight', 'preflight', () =>
      steps.preflight({
        workflowId,
        identity: input.identity,
        trigger: input.trigger,
        custodian: input.custodian,
        allowSoftwareCustodian: policy.allowSoftwareCustodian,
        minKeyAgeDays: policy.minKeyAgeDays,
        requestedBy: input.requestedBy,
        reason: input.reason,
      }),
    );
    oldKeyId = pre.oldKeyId;
    status.oldKeyId = oldKeyId;
    await audit('preflight', { gates: pre.gates, activeManifests: pre.activeManifests });
    if (pre.skip) return await finish('skipped', pre.skip);
    if (!pre.ok || !oldKeyId) {
      const failed = pre.gates.filter((g) => !g.ok).map((g) => `${g.name}: ${g.detail}`);
      return await finish('failed', `preflight refused: ${failed.join('; ')}`);
    }
    const oldKey = oldKeyId;
    status.progress.resign.total = pre.activeManifests;

    // t=0: the new key, generated inside the target custodian.
    const generated = await runStep('keygen', 'keygen', () =>
      steps.generateKey({ workflowId, runId, identity: input.identity, custodian: input.custodian }),
    );
    newKeyId = generated.keyId;
    status.newKeyId = newKeyId;
    const newKey = newKeyId;
    await audit('keygen', { newKeyId, custodian: generated.custodian, where: generated.summary });

    if (compromise) {
      // Compromise: the old key is distrusted first; its manifests are revoked at once, then
      // re-issued. Verifiers see INVALID/REVOKED until they hold the new anchor: expected.
      await runStep('publish-anchor', 'publish-anchor', async () => {
        await steps.setKeyState({ keyId: oldKey, to: 'retiring' });
        await steps.setKeyState({ keyId: newKey, to: 'active' });
        const published = await steps.publishAnchor({
          identity: input.identity,
          activeKeyId: newKey,
          keys: [{ keyId: newKey, status: 'active' }],
        });
        status.anchorVersion = published.version;
        // The old key is distrusted already: each twin is handed out as soon as it exists.
        await releaseDelivery(newKey, null, 'compromise: the old key is no longer trusted');
      });
      await audit('publish-anchor', { version: status.anchorVersion, keys: [newKey], outage: 'expected' });
      await notify(
        'critical',
        `rotor: key compromise on ${input.identity}: key ${oldKey.slice(0, 12)}… removed from the trust anchor and its manifests revoked; expect INVALID and REVOKED results until re-issued manifests are deployed`,
      );
      await runStep('revoke', 'revoke', () => revokeAll(oldKey, newKey, 'active'));
      await audit('revoke', { revoked: status.progress.revoke.done });
      await runStep('re-sign', 're-sign', () => resignAll(oldKey, newKey, 'revoked', status.progress.resign));
      await audit('re-sign', {
        resigned: status.progress.resign.done,
        unresignable: status.unresignable.length,
      });
      await runStep('decommission', 'decommission', () =>
        steps.decommissionKey({ keyId: oldKey, retentionDays: policy.retentionDays }),
      );
      await audit('decommission', { destroyed: oldKey, retentionDays: policy.retentionDays });
      return await finish('completed', 'compromise handled: old key revoked, destroyed; manifests re-issued');
    }

    // t=5m: every active manifest of the old key gets its re-issued twin, signed by the new key.
    await waitUntil(at(policy.resignAtSeconds), 're-sign');
    await runStep('re-sign', 're-sign', () => resignAll(oldKey, newKey, 'active', status.progress.resign));
    await audit('re-sign', {
      resigned: status.progress.resign.done,
      unresignable: status.unresignable.length,
    });
    if (status.unresignable.length > 0 && policy.blockOnUnresignable) {
      status.blockers = [
        `${status.unresignable.length} manifest(s) could not be re-issued; they are listed in the status`,
      ];
      pause({ reason: 'manifests that cannot be re-issued block the rotation (policy blockOnUnresignable)' });
      await notify(
        'warning',
        `rotor: rotation ${workflowId} paused: ${status.unresignable.length} manifest(s) could not be re-issued`,
      );
      await holdIfPaused();
      status.blockers = [];
    }

    // t=5m: the anchor lists both keys, the new one active.
    const { publishedAt } = await runStep('publish-anchor', 'publish-anchor', async () => {
      // One active key per identity: the old one steps down before the new one steps up.
      await steps.setKeyState({ keyId: oldKey, to: 'retiring' });
      await steps.setKeyState({ keyId: newKey, to: 'active' });
      const published = await steps.publishAnchor({
        identity: input.identity,
        activeKeyId: newKey,
        keys: [
          { keyId: newKey, status: 'active' },
          { keyId: oldKey, status: 'retiring' },
        ],
      });
      status.anchorVersion = published.version;
      return published;
    });
    await audit('publish-anchor', { version: status.anchorVersion, keys: [newKey, oldKey] });

    // Until t=30m (or later): every live verifier holds the new anchor.
    await runStep('await-adoption', 'await-adoption', async () => {
      const adopted = await awaitGate(
        'adoption',
        () =>
          steps.checkAdoption({
            identity: input.identity,
            version: status.anchorVersion!,
            publishedAt,
            livenessSeconds: policy.verifierLivenessSeconds,
            anchorMaxAgeSeconds: policy.anchorMaxAgeSeconds,
            marginSeconds: policy.adoptionMarginSeconds,
          }),
        at(policy.adoptBySeconds),
      );
      // Runbook "Zero-downtime overlap": agents switch to the twins only once verifiers trust
      // the new key; until now `rotor serve` kept handing out the originals.
      await releaseDelivery(newKey, status.anchorVersion!, 'verifier adoption gate passed');
      return adopted;
    });
    await audit('await-adoption', {
      mode: status.adoption.mode,
      verifiers: status.adoption.verifiers.length,
    });

    // t=35m: one signed revocation record per superseded manifest of the old key. No way back.
    await waitUntil(at(policy.revokeAtSeconds), 'revoke');
    await runStep('revoke', 'revoke', () => revokeAll(oldKey, newKey, 'superseded'));
    await audit('revoke', { revoked: status.progress.revoke.done });

    // t=1h: the overlap closes once every live verifier has accepted a manifest of the new key.
    await waitUntil(at(policy.decommissionAtSeconds), 'decommission');
    await runStep('decommission', 'decommission', async () => {
      await awaitGate(
        'acceptance',
        () =>
          steps.checkAcceptance({
            identity: input.identity,
            keyId: newKey,
            livenessSeconds: policy.verifierLivenessSeconds,
          }),
        at(policy.decommissionAtSeconds) +
          Math.max(policy.pollSeconds, policy.adoptBySeconds - policy.resignAtSeconds) * 1000,
      );
      const result = await steps.decommissionKey({ keyId: oldKey, retentionDays: policy.retentionDays });
      const published = await steps.publishAnchor({
        identity: input.identity,
        activeKeyId: newKey,
        keys: policy.keepOldKeyInAnchor
          ? [
              { keyId: newKey, status: 'active' },
              { keyId: oldKey, status: 'verify-only', validUntil: result.retentionUntil },
            ]
          : [{ keyId: newKey, status: 'active' }],
      });
      status.anchorVersion = published.version;
      return result;
    });
    await audit('decommission', { destroyed: oldKey, anchorVersion: status.anchorVersion });
    return await finish('completed', `rotated ${oldKey.slice(0, 12)}… → ${newKey.slice(0, 12)}…`);
  } catch (err) {
    if (!(err instanceof Interrupted)) {
      if (isCancellation(err)) throw err;
      await finish('failed', failureMessage(err)).catch((bookkeepingErr: unknown) => {
        // The step's own failure is what the workflow reports; a failed bookkeeping write after it
        // is only logged, so it cannot mask the cause.
        log.error('recording the failed rotation failed', { error: failureMessage(bookkeepingErr) });
      });
      throw err;
    }
    const request = interrupt!.request;
    const why = request.reason ?? err.kind;
    await audit(`${err.kind}-requested`, { reason: why, by: request.by ?? input.requestedBy });
    if (!newKeyId || !oldKeyId) return await finish(err.kind === 'abort' ? 'aborted' : 'rolled-back', why);
    // Rollback: keep the old key, give every manifest the new key signed a successor signed by the
    // old key, take the new key out of the anchor, quarantine and destroy it.
    const oldKey = oldKeyId;
    const newKey = newKeyId;
    rollingBack = true;
    status.phase = 'rolling-back';
    status.paused = false;
    status.pauseReason = undefined;
    await rollbackStep(async () => {
      // Always looked for, not only when progress says so: a batch can be committed by a step
      // attempt that then failed, and a twin signed by the new key must not outlive it.
      await resignAll(newKey, oldKey, 'active', status.progress.rollback);
      // Every verifier trusts the old key throughout: its successors go out at once, the new
      // key's twins no longer do.
      await releaseDelivery(oldKey, null, `${err.kind}: the old key stays`, [newKey]);
      await steps.setKeyState({ keyId: newKey, to: 'quarantined' });
      await steps.setKeyState({ keyId: oldKey, to: 'active' });
      if (status.anchorVersion !== undefined) {
        const published = await steps.publishAnchor({
          identity: input.identity,
          activeKeyId: oldKey,
          keys: [{ keyId: oldKey, status: 'active' }],
        });
        status.anchorVersion = published.version;
      }
      await steps.decommissionKey({ keyId: newKey, retentionDays: policy.retentionDays });
    });
    await notify(
      'warning',
      `rotor: rotation ${workflowId} ${err.kind === 'abort' ? 'aborted' : 'rolled back'}: ${why}`,
    );
    return await finish(err.kind === 'abort' ? 'aborted' : 'rolled-back', why);
  }

  /** Compensation retries until it succeeds: a half-done rollback is worse than a slow one. */
  async function rollbackStep(fn: () => Promise<void>) {
    for (;;) {
      try {
        await fn();
        return;
      } catch (err) {
        if (isCancellation(err)) throw err;
        const message = failureMessage(err);
        status.blockers = [`rollback failed: ${message}; resume to retry`];
        status.paused = true;
        status.pauseReason = 'rollback step failed';
        await notify('critical', `rotor: rollback of ${workflowId} failed: ${message}`);
        await condition(() => !status.paused);
        status.blockers = [];
      }
    }
  }
}

function resolvePolicyOrFail(input: RotationInput): RotationPolicy {
  try {
    return resolvePolicy(input.trigger, input.policy);
  } catch (err) {
    throw ApplicationFailure.nonRetryable(err instanceof Error ? err.message : String(err), 'InvalidPolicy');
  }
}

function failureMessage(err: unknown): string {
  if (err instanceof ActivityFailure && err.cause) return err.cause.message;
  return err instanceof Error ? err.message : String(err);
}
