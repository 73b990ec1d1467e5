/**
 * How a rotation looks to an operator in a terminal: the status screen of `rotor rotate status`
 * and the plan of `rotor rotate plan`. Plain text, no colour, so it reads the same in a pager,
 * a CI log and a chat paste.
 */
import { progressBar, table } from '../text/table';
import type { RotationStatus } from '../workflows/rotation-api';

export { progressBar, table };

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

const ENDED = new Set(['completed', 'rolled-back', 'aborted', 'failed', 'skipped']);

export function hasEnded(status: Pick<RotationStatus, 'phase'>): boolean {
  return ENDED.has(status.phase);
}

export function renderStatus(s: RotationStatus, now: Date = new Date()): string {
  const lines: string[] = [];
  const pauseKind = s.pause?.kind ? ` [${s.pause.kind}]` : '';
  const state = s.paused ? `${s.phase} (PAUSED: ${s.pauseReason ?? 'no reason given'})${pauseKind}` : s.phase;
  lines.push(`rotation ${s.workflowId}: ${s.trigger} rotation of ${s.identity}`);
  if (s.escalation) {
    lines.push(
      `escalated   to a key compromise at ${s.escalation.at} by ${s.escalation.by} (from ${s.escalation.fromPhase}): ${s.escalation.reason}`,
    );
  }
  lines.push(`phase       ${state}`);
  lines.push(`started     ${s.startedAt}${s.endedAt ? `   ended ${s.endedAt}` : ''}`);
  lines.push(`old key     ${s.oldKeyId ?? '-'}`);
  lines.push(`new key     ${s.newKeyId ?? '-'}`);
  if (s.anchorVersion !== undefined) lines.push(`anchor      version ${s.anchorVersion}`);
  if (s.outcome) lines.push(`outcome     ${s.outcome}`);

  lines.push('', 'timeline');
  const t0 = Date.parse(s.startedAt);
  const rows = [['STEP', 'PLANNED', '', 'STARTED', 'ENDED', 'NOTE']];
  for (const e of s.timeline) {
    const planned = Date.parse(e.plannedAt);
    const mark = e.actualEnd
      ? 'done'
      : e.actualStart
        ? 'running'
        : !hasEnded(s) && planned <= now.getTime()
          ? 'due'
          : '';
    rows.push([
      e.step,
      e.plannedAt,
      offset(Math.max(0, (planned - t0) / 1000)),
      e.actualStart ?? '-',
      e.actualEnd ?? mark,
      e.note ?? '',
    ]);
  }
  lines.push(...indent(table(rows)));

  lines.push('progress');
  lines.push(`  re-sign   ${progressBar(s.progress.resign)}`);
  lines.push(`  revoke    ${progressBar(s.progress.revoke)}`);
  if (s.progress.rollback.total > 0 || s.phase === 'rolling-back' || s.phase === 'rolled-back') {
    lines.push(`  rollback  ${progressBar(s.progress.rollback)}`);
  }
  const unresignable = s.unresignableCount ?? s.unresignable.length;
  if (unresignable > 0) {
    lines.push(`  ${unresignable} manifest(s) could not be re-issued:`);
    for (const u of s.unresignable.slice(0, 10)) lines.push(`    ${u.manifestId}: ${u.reason}`);
    if (unresignable > 10)
      lines.push(`    … and ${unresignable - 10} more (rotor rotate unresignable ${s.identity})`);
  }

  lines.push(
    '',
    `verifier adoption (${s.adoption.mode}${s.adoption.live ? `: ${s.adoption.behind ?? 0} of ${s.adoption.live} live behind` : ''}${s.adoption.checkedAt ? `, checked ${s.adoption.checkedAt}` : ''})`,
  );
  if (s.adoption.verifiers.length === 0) {
    lines.push(
      s.adoption.mode === 'cache-lifetime'
        ? '  no live verifier checked in: adoption is the anchor cache lifetime having passed'
        : '  no verifier has been looked at yet',
    );
  } else {
    const vrows = [['VERIFIER', 'ANCHOR', 'ADOPTED', 'ACCEPTED NEW KEY', 'LAST SEEN']];
    for (const v of s.adoption.verifiers) {
      vrows.push([
        v.verifierId,
        v.anchorVersion === null ? '-' : String(v.anchorVersion),
        yesNo(v.adopted),
        yesNo(v.acceptedNewKey),
        v.lastSeen,
      ]);
    }
    lines.push(...indent(table(vrows)));
  }

  if (s.gates) {
    // The pickup and analysis gates before revocation, at their last check (issue 14).
    lines.push('', `gates before revocation (checked ${s.gates.checkedAt})`);
    lines.push(`  pickup    ${s.gates.pickup.detail}`);
    lines.push(`  analysis  ${s.gates.analysis.detail}`);
  }

  lines.push('', 'blockers');
  lines.push(...(s.blockers.length > 0 ? s.blockers.map((b) => `  - ${b}`) : ['  none']));
  return `${lines.join('\n')}\n`;
}

function yesNo(b: boolean): string {
  return b ? 'yes' : 'no';
}

function indent(text: string): string[] {
  return text
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => `  ${l}`)
    .concat('');
}
