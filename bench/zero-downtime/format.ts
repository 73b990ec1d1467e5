/** The harness's figures as text: per rotation, per phase and key, and the rejections' reasons. */
import { table } from '../../src/text/table';
import type { HarnessReport } from './harness';

export function formatReport(r: HarnessReport): string {
  const lines: string[] = [];
  lines.push(
    `agents: ${r.agents['on-time']} on time, ${r.agents.late} late, ${r.agents.never} never fetching; ` +
      `fetches ${r.fetches.ok} (200, ${r.fetches.envelopes} of them v0.2 envelopes) + ${r.fetches.notModified} (304), ${r.fetches.pickups} pickups, ${r.fetches.errors} errors`,
    `verifications: ${r.totalVerifications} in ${r.seconds.toFixed(1)} s = ${Math.round(r.rate)}/s over ${r.verifiers} verifier processes ` +
      `(target ${r.targetRate}/s, ${r.skipped} presentations held back)`,
    `machine: ${r.load.cpus} cores, 1-min load average ${r.load.loadavg1.before.toFixed(2)} before the run, mean ${r.load.loadavg1.mean.toFixed(2)}, max ${r.load.loadavg1.max.toFixed(2)}; ` +
      `harness process ${r.load.harnessCpuSeconds.toFixed(1)} s CPU`,
    '',
  );
  lines.push(
    table([
      [
        'ROTATION',
        'OUTCOME',
        'KEYS',
        'DURATION',
        'REVOKE LATE',
        'VERIFICATIONS',
        'RATE/S',
        'INTENDED',
        'FALSE',
      ],
      ...r.scenarios.map((s) => [
        s.scenario,
        s.outcome,
        `${s.oldKey}→${s.newKey}`,
        `${s.durationSeconds.toFixed(1)} s`,
        s.revokeLateSeconds === null ? '-' : `${s.revokeLateSeconds.toFixed(1)} s`,
        String(s.verifications),
        String(Math.round(s.rate)),
        String(s.intended),
        String(s.false),
      ]),
    ]).trimEnd(),
    '',
  );
  const rows: string[][] = [['PHASE', 'KEY', 'VALID', 'INVALID', 'REVOKED', 'EXPIRED']];
  for (const [phase, byKey] of Object.entries(r.counts)) {
    for (const [key, c] of Object.entries(byKey).sort()) {
      rows.push([phase, key, String(c.VALID), String(c.INVALID), String(c.REVOKED), String(c.EXPIRED)]);
    }
  }
  lines.push(table(rows).trimEnd(), '');
  lines.push(`rejections: ${r.intended} intended, ${r.false} false`);
  for (const [why, n] of Object.entries(r.intendedByWhy)) lines.push(`  intended  ${n}  ${why}`);
  for (const [v, n] of Object.entries(r.falseByVerifier)) lines.push(`  false     ${n}  at verifier ${v}`);
  for (const f of r.falseSample.slice(0, 5))
    lines.push(
      `    e.g. ${f.verifier} ${f.agentKind} agent ${f.agent}: ${f.why} (anchor v${f.anchorVersion}, ${f.phase})`,
    );
  lines.push(
    `keys: ${Object.entries(r.keyLabels)
      .map(([l, k]) => `${l}=${k.slice(0, 12)}…`)
      .join(' ')}`,
  );
  return `${lines.join('\n')}\n`;
}
