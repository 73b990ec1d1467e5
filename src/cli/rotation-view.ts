/**
 * How a rotation looks to an operator in a terminal: the status screen of `rotor rotate status`
 * and the plan of `rotor rotate plan`. Plain text, no colour, so it reads the same in a pager,
 * a CI log and a chat paste.
 */
import type { RotationListEntry } from '../rotation/list';
import { offset, type RotationPlan } from '../rotation/plan';
import { progressBar, table } from '../text/table';
import type { RotationStatus } from '../workflows/rotation-api';

export { offset, progressBar, table };

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
    if (s.escalation.trustedBefore)
      lines.push(`cut-off     only manifests stored before ${s.escalation.trustedBefore} are re-issued`);
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

export function renderPlan(p: RotationPlan): string {
  const lines: string[] = [];
  lines.push(
    `plan: ${p.trigger} rotation of ${p.identity}, new key in the ${p.custodian} custodian, if started at ${p.plannedAt}`,
  );
  lines.push(`verdict: ${p.verdict}`);
  lines.push(
    `active key: ${p.activeKey ? `${p.activeKey.keyId} (${p.activeKey.custodian}, ${p.activeKey.ageDays} days old)` : 'none'}`,
  );
  lines.push('', 'timeline');
  lines.push(
    ...table([['STEP', 'T', 'AT'], ...p.timeline.map((e) => [e.step, e.offset, e.at])])
      .split('\n')
      .filter(Boolean)
      .map((l) => `  ${l}`),
  );
  lines.push('', 'counts');
  lines.push(`  ${p.counts.activeManifests} active manifest(s) of the current key`);
  lines.push(`  ${p.counts.resign} re-issued twin(s) signed by the new key`);
  lines.push(`  ${p.counts.revoke} revocation record(s) added to the CRL`);
  lines.push(
    `  ${p.counts.keysGenerated} key generated, ${p.counts.keysDestroyed} key destroyed (archived ${p.policy.retentionDays} days)`,
  );
  lines.push('', 'preflight gates');
  lines.push(
    ...table([['GATE', 'EXPECT', 'DETAIL'], ...p.gates.map((g) => [g.name, g.expect, g.detail])])
      .split('\n')
      .filter(Boolean)
      .map((l) => `  ${l}`),
  );
  return `${lines.join('\n')}\n`;
}

/** `rotor rotate list`: one row per run, newest first; empty when there are none. */
export function renderRotationList(rows: RotationListEntry[]): string {
  if (rows.length === 0) return '';
  const header = ['WORKFLOW', 'RUN', 'TRIGGER', 'PHASE', 'STATUS', 'STARTED', 'ENDED', 'OUTCOME'];
  const cells = rows.map((r) => [
    r.workflowId,
    r.runId.slice(0, 8),
    r.trigger ?? '-',
    r.phase ?? '-',
    r.status ?? '-',
    r.startedAt ?? '-',
    r.endedAt ?? '-',
    r.outcome ?? '',
  ]);
  return table([header, ...cells]);
}
