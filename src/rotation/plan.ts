/**
 * `rotor rotate plan`: what a rotation would do, when, and to how many manifests, changing
 * nothing. Its gates are the preflight's own (src/activities/gates.ts): those that read the store
 * are run now; those that need the worker's custodian, public URL or webhook say what the
 * preflight will check.
 */
import {
  activeKeyGate,
  custodianPolicyRefusal,
  keyAge,
  manifestsGate,
  PREFLIGHT_GATES,
} from '../activities/gates';
import type { CustodianKind, Trigger } from '../domain';
import type { Queryable } from '../store/queryable';
import { plannedSteps, type RotationPolicy } from '../workflows/policy';

export interface PlanGate {
  name: string;
  /** `pass`/`fail`: known now; `skip`: the scheduled rotation would end here; `at-start`: only the preflight can tell. */
  expect: 'pass' | 'fail' | 'skip' | 'at-start';
  detail: string;
}

export interface RotationPlan {
  identity: string;
  trigger: Trigger;
  custodian: CustodianKind;
  plannedAt: string;
  policy: RotationPolicy;
  timeline: { step: string; offset: string; at: string }[];
  activeKey: { keyId: string; custodian: string; activatedAt: string | null; ageDays: number } | null;
  /** What the rotation would write: twins, revocation records, keys. */
  counts: {
    activeManifests: number;
    resign: number;
    revoke: number;
    keysGenerated: number;
    keysDestroyed: number;
  };
  gates: PlanGate[];
  /** What would happen at preflight, if it can be told now. */
  verdict: 'would-start' | 'would-skip' | 'would-fail';
}

/** `+5m`, `+23h30m`, `+0s`: an offset from t=0 as people say it. */
export function offset(seconds: number): string {
  if (seconds === 0) return '+0s';
  const parts: string[] = [];
  let rest = Math.round(seconds);
  for (const [unit, size] of [
    ['d', 86_400],
    ['h', 3600],
    ['m', 60],
    ['s', 1],
  ] as const) {
    if (rest >= size) {
      parts.push(`${Math.floor(rest / size)}${unit}`);
      rest %= size;
    }
  }
  return `+${parts.join('')}`;
}

export async function buildPlan(
  q: Queryable,
  args: { identity: string; trigger: Trigger; policy: RotationPolicy; custodian: CustodianKind; now: Date },
): Promise<RotationPlan> {
  const { identity, trigger, policy, custodian, now } = args;
  const at = (seconds: number) => new Date(now.getTime() + seconds * 1000).toISOString();
  const timeline: RotationPlan['timeline'] = plannedSteps(trigger, policy).map(({ step, atSeconds }) => ({
    step,
    offset: offset(atSeconds),
    at: at(atSeconds),
  }));
  if (trigger !== 'compromise') {
    // The adoption deadline is not a step, but it is when an unadopted anchor pauses the rotation.
    // The gates before revocation start as soon as adoption passes, so the deadline follows them.
    const i = timeline.findIndex((e) => e.step === 'pre-revocation');
    timeline.splice(i + 1, 0, {
      step: 'adoption-deadline',
      offset: offset(policy.adoptBySeconds),
      at: at(policy.adoptBySeconds),
    });
  }

  const gates: PlanGate[] = [];
  const { gate: keyGate, key } = await activeKeyGate(q, identity);
  let activeManifests = 0;
  let skip = false;
  let ageDays = 0;
  for (const { name, proves } of PREFLIGHT_GATES) {
    switch (name) {
      case 'active-key':
        gates.push({ name, expect: keyGate.ok ? 'pass' : 'fail', detail: keyGate.detail });
        break;
      case 'key-age': {
        if (!key) break;
        const age = await keyAge(q, identity, key, policy.minKeyAgeDays, now);
        ageDays = age.ageDays;
        if (trigger !== 'scheduled') break;
        skip = !age.due;
        const days = age.daysSinceRotation.toFixed(1);
        gates.push({
          name,
          expect: skip ? 'skip' : 'pass',
          detail: skip
            ? `${days} days since the key's last rotation, under policy.minKeyAgeDays ${policy.minKeyAgeDays}: a scheduled rotation would be skipped until ${age.dueAt}`
            : `${days} days since the key's last rotation (policy.minKeyAgeDays ${policy.minKeyAgeDays})`,
        });
        break;
      }
      case 'manifests-counted': {
        if (!key) break;
        const counted = await manifestsGate(q, key.keyId);
        activeManifests = counted.count;
        gates.push({ name, expect: 'pass', detail: counted.gate.detail });
        break;
      }
      case 'custodian-policy': {
        const refusal = custodianPolicyRefusal(custodian, policy.allowSoftwareCustodian);
        gates.push(
          refusal
            ? { name, expect: 'fail', detail: refusal }
            : { name, expect: 'at-start', detail: proves(custodian) },
        );
        break;
      }
      default:
        gates.push({ name, expect: 'at-start', detail: proves(custodian) });
    }
  }

  const fails = gates.some((g) => g.expect === 'fail');
  return {
    identity,
    trigger,
    custodian,
    plannedAt: now.toISOString(),
    policy,
    timeline,
    activeKey: key
      ? {
          keyId: key.keyId,
          custodian: key.custodian,
          activatedAt: key.activatedAt?.toISOString() ?? null,
          ageDays: Number(ageDays.toFixed(2)),
        }
      : null,
    counts: {
      activeManifests,
      resign: skip ? 0 : activeManifests,
      revoke: skip ? 0 : activeManifests,
      keysGenerated: skip || !key ? 0 : 1,
      keysDestroyed: skip || !key ? 0 : 1,
    },
    gates,
    // The preflight ends a scheduled rotation that is not due before it checks anything else.
    verdict: !key ? 'would-fail' : skip ? 'would-skip' : fails ? 'would-fail' : 'would-start',
  };
}
