/**
 * The demo's closing report: summary.json (for machines and for the record) and the same facts
 * as a few lines for the person who ran it.
 */
import { table } from '../text/table';
import type { CustodianKind } from '../workflows/policy';
import type { RotationStatus } from '../workflows/rotation-api';
import { OUTPUT_FILES, type OutputVerification, type WrittenOutputs } from './outputs';
import type { VerdictTally } from './verifiers';
import { timelineTable } from './view';

export interface VerifierSummary {
  id: string;
  anchorVersion: number;
  trustedKeyIds: string[];
  verdicts: VerdictTally;
  validByKey: Record<string, number>;
  /** Seconds from t=0 (to the demo's one-second polling) when it first held the new anchor; first verified a new-key manifest VALID. */
  adoptedAtSeconds: number | null;
  acceptedNewKeyAtSeconds: number | null;
}

export interface DemoSummary {
  ok: boolean;
  identity: string;
  trigger: string;
  workflowId: string;
  phase: string;
  outcome: string | null;
  startedAt: string;
  endedAt: string | null;
  timelineSeconds: number;
  timeline: {
    step: string;
    plannedAt: string;
    plannedOffsetSeconds: number;
    actualStart: string | null;
    actualEnd: string | null;
    startedOffsetSeconds: number | null;
    endedOffsetSeconds: number | null;
  }[];
  policy: RotationStatus['policy'];
  keys: { oldKeyId: string | null; newKeyId: string | null; custodian: CustodianKind };
  counts: { seeded: number; resigned: number; revoked: number; activeAfter: number; unresignable: number };
  /** Manifests per version: all seeded before the rotation, the active ones after it (the migration). */
  versions: { before: VersionCounts; after: VersionCounts };
  anchor: { version: number | null; keys: number; bytes: number };
  crl: { records: number; bytes: number };
  verifiers: VerifierSummary[];
  environment: { temporal: string; database: string; custodian: string };
  outputs: { dir: string; files: string[] };
  verification: OutputVerification;
}

export type VersionCounts = { '0.1': number; '0.2': number };

export function buildSummary(args: {
  status: RotationStatus;
  timelineSeconds: number;
  seeded: number;
  versions: { before: VersionCounts; after: VersionCounts };
  custodian: CustodianKind;
  written: WrittenOutputs;
  verification: OutputVerification;
  verifiers: VerifierSummary[];
  environment: DemoSummary['environment'];
  outDir: string;
}): DemoSummary {
  const s = args.status;
  const t0 = Date.parse(s.startedAt);
  const offsetOf = (iso: string | undefined) => (iso ? round((Date.parse(iso) - t0) / 1000) : null);
  return {
    ok: s.phase === 'completed' && args.verification.ok,
    identity: s.identity,
    trigger: s.trigger,
    workflowId: s.workflowId,
    phase: s.phase,
    outcome: s.outcome ?? null,
    startedAt: s.startedAt,
    endedAt: s.endedAt ?? null,
    timelineSeconds: args.timelineSeconds,
    timeline: s.timeline.map((e) => ({
      step: e.step,
      plannedAt: e.plannedAt,
      plannedOffsetSeconds: round((Date.parse(e.plannedAt) - t0) / 1000),
      actualStart: e.actualStart ?? null,
      actualEnd: e.actualEnd ?? null,
      startedOffsetSeconds: offsetOf(e.actualStart),
      endedOffsetSeconds: offsetOf(e.actualEnd),
    })),
    policy: s.policy,
    keys: { oldKeyId: s.oldKeyId ?? null, newKeyId: s.newKeyId ?? null, custodian: args.custodian },
    counts: {
      seeded: args.seeded,
      resigned: s.progress.resign.done,
      revoked: s.progress.revoke.done,
      activeAfter: args.written.manifests,
      unresignable: s.unresignableCount ?? s.unresignable.length,
    },
    versions: args.versions,
    anchor: {
      version: args.verification.anchor.version,
      keys: args.verification.anchor.keys,
      bytes: args.written.anchorBytes,
    },
    crl: { records: args.verification.crl.lines, bytes: args.written.crlBytes },
    verifiers: args.verifiers,
    environment: args.environment,
    outputs: { dir: args.outDir, files: Object.values(OUTPUT_FILES) },
    verification: args.verification,
  };
}

function at(seconds: number | null): string {
  return seconds === null ? '-' : `+${seconds}s`;
}

function round(n: number): number {
  return Math.round(n * 10) / 10;
}

function short(keyId: string | null): string {
  return keyId ? `${keyId.slice(0, 16)}…` : '-';
}

function kib(bytes: number): string {
  return bytes < 10_240 ? `${bytes} bytes` : `${(bytes / 1024).toFixed(0)} KiB`;
}

export function renderSummary(summary: DemoSummary, status: RotationStatus): string {
  const v = summary.verification;
  const lines: string[] = [];
  const took = summary.endedAt
    ? ((Date.parse(summary.endedAt) - Date.parse(summary.startedAt)) / 1000).toFixed(1)
    : '?';
  lines.push(
    `rotation ${summary.phase}${summary.outcome ? ` (${summary.outcome})` : ''} in ${took} s, timeline planned ${summary.timelineSeconds} s`,
  );
  lines.push('', ...timelineTable(status).map((l) => `  ${l}`), '');
  lines.push(
    ...table([
      [
        'keys',
        `${short(summary.keys.oldKeyId)} -> ${short(summary.keys.newKeyId)} (${summary.keys.custodian} custodian; old private key destroyed)`,
      ],
      [
        'manifests',
        `${summary.counts.seeded} seeded, ${summary.counts.resigned} re-issued, ${summary.counts.revoked} revoked, ${summary.counts.activeAfter} active after` +
          (summary.counts.unresignable > 0 ? `, ${summary.counts.unresignable} could not be re-issued` : ''),
      ],
      [
        'versions',
        `before: ${summary.versions.before['0.1']} v0.1 + ${summary.versions.before['0.2']} v0.2; ` +
          `active after: ${summary.versions.after['0.1']} v0.1 + ${summary.versions.after['0.2']} v0.2 (reissueAs ${summary.policy.reissueAs ?? '0.2'})`,
      ],
      [
        'anchor',
        `version ${summary.anchor.version ?? '-'}, ${summary.anchor.keys} key(s), ${kib(summary.anchor.bytes)}`,
      ],
      ['CRL', `${summary.crl.records} record(s), ${kib(summary.crl.bytes)}`],
      ...summary.verifiers.map((x) => [
        x.id,
        `${x.verdicts.VALID} VALID, ${x.verdicts.INVALID + x.verdicts.EXPIRED} INVALID, ${x.verdicts.REVOKED} REVOKED; ` +
          `held the new anchor at ${at(x.adoptedAtSeconds)}, first VALID new-key manifest at ${at(x.acceptedNewKeyAtSeconds)}`,
      ]),
    ])
      .trimEnd()
      .split('\n')
      .map((l) => `  ${l}`),
  );
  lines.push('', `outputs in ${summary.outputs.dir}: ${summary.outputs.files.join(', ')}`);
  lines.push(
    `verification of the outputs alone: ${v.manifests.valid}/${v.manifests.total} manifests VALID under ${OUTPUT_FILES.anchor} + ${OUTPUT_FILES.crl}; ` +
      `${v.crl.accepted}/${v.crl.lines} CRL lines accepted; ${v.oldRevoked.revoked}/${v.oldRevoked.expected} old manifest ids revoked`,
  );
  for (const p of v.problems) lines.push(`  problem: ${p}`);
  return `${lines.join('\n')}\n`;
}
