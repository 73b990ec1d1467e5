/**
 * The zero-downtime harness, reduced (issue 14 point 3; the full run is `npm run bench:zero-downtime`,
 * figures in BENCHMARKS.md): a real `rotor serve` process, registered verifier processes built on
 * the reference verifier, agents fetching through the delivery endpoint with their credentials,
 * through a personnel rotation and an escalation to compromise during adoption, on this file's
 * Temporal worker and database.
 *
 * The claim is zero false rejections at the honest verifiers. So that the check can fail, one more
 * verifier is pinned to a root that signed nothing: its rejections must come out false, and the
 * escalation must show intended rejections of old-key manifests.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chartSvg } from '../../bench/zero-downtime/chart';
import { formatReport } from '../../bench/zero-downtime/format';
import { type HarnessReport, runHarness } from '../../bench/zero-downtime/harness';
import { createRotationEnv, type RotationEnv } from '../helpers/rotation-env';

let env: RotationEnv;
beforeAll(async () => {
  env = await createRotationEnv('software');
});
afterAll(async () => {
  await env?.close();
});

describe('zero-downtime harness (reduced)', () => {
  let report: HarnessReport;

  it('runs a personnel rotation and an escalation under load with no false rejection at honest verifiers', async () => {
    const lines: string[] = [];
    report = await runHarness(
      {
        pool: env.db.pool,
        databaseUrl: env.db.url,
        client: env.temporal.client,
        taskQueue: env.temporal.taskQueue,
        custodian: 'software',
        async initIdentity(identity) {
          const signer = await env.initIdentity(identity);
          return { signer, root: await env.rootOf(identity) };
        },
      },
      {
        identity: 'zero-downtime',
        agents: 60,
        verifiers: 2,
        rate: 150,
        scenarios: ['personnel', 'escalation'],
        maxAgeSeconds: 1,
        resignAtSeconds: 1,
        revokeAtSeconds: 9,
        decommissionAtSeconds: 11,
        holdSeconds: 3,
        gapSeconds: 2,
        lateShare: 0.15,
        neverShare: 0.1,
        lateFetchSeconds: 10,
        mispinnedVerifier: true,
        log: (line) => lines.push(line),
      },
    );
    // What the run saw, for a person reading a failure (test-output/ is not committed).
    mkdirSync('test-output/zero-downtime', { recursive: true });
    writeFileSync('test-output/zero-downtime/report.txt', `${lines.join('\n')}\n${formatReport(report)}`);
    writeFileSync('test-output/zero-downtime/chart.svg', chartSvg(report, 'zero-downtime harness (reduced)'));
    const outcomes = report.scenarios.map((s) => s.outcome);
    expect(outcomes, lines.join('\n')).toEqual(['completed', 'completed']);
    expect(report.fetches.errors).toBe(0);
    expect(report.fetches.pickups).toBeGreaterThan(0);
    expect(report.totalVerifications).toBeGreaterThan(1000);

    // The honest verifiers: not one false rejection.
    const honestFalse = Object.entries(report.falseByVerifier).filter(([v]) => v !== 'mispinned');
    expect(honestFalse, JSON.stringify(report.falseSample.filter((f) => f.verifier !== 'mispinned'))).toEqual(
      [],
    );
    // The mis-pinned one holds no anchor: everything it says is a rejection, and the harness calls
    // each one false (a classifier that called every rejection intended fails here).
    expect(report.falseByVerifier.mispinned).toBeGreaterThan(0);
    expect(report.false).toBe(report.falseByVerifier.mispinned);
    expect(report.falseSample.every((f) => f.verifier === 'mispinned' && f.reason === 'no_anchor')).toBe(
      true,
    );

    // The escalation: the old key's manifests are rejected on purpose (distrusted, revoked).
    const [personnel, escalation] = report.scenarios;
    expect(escalation!.intendedByWhy['compromise: old-key manifest']).toBeGreaterThan(0);
    // The personnel rotation hands twins out before revoking: its only intended rejections are of
    // agents that did not fetch in time (late or never), none of an on-time agent.
    expect(Object.keys(personnel!.intendedByWhy).every((why) => why.startsWith('revoked manifest:'))).toBe(
      true,
    );
    // Both keys of the personnel rotation verified VALID, and the escalation's new key too.
    expect(report.series.K0!.valid.some((n) => n > 0)).toBe(true);
    expect(report.series.K1!.valid.some((n) => n > 0)).toBe(true);
    expect(report.series.K2!.valid.some((n) => n > 0)).toBe(true);
  }, 150_000);
});
