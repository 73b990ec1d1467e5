/**
 * The zero-downtime harness (issue 14, point 3): a verification load through whole rotations on
 * the real stack, with every rejection classified as intended or false.
 *
 * - `rotor serve` (a child process, bin/rotor-dev.mjs) serves the signed anchor, the CRL and each
 *   agent's manifest, all with short cache lifetimes so a rotation fits in seconds.
 * - N simulated agents each hold their current manifest. They take it from
 *   `GET /v1/agents/{agent_id}/manifest` with their delivery credential (a per-agent one, or their
 *   deployment's), honouring Cache-Control and revalidating with If-None-Match: most fetch again
 *   every max-age ("on time"), some only every `lateFetchSeconds` ("late"), and some never fetch:
 *   they were handed their original out of band ("never"). Twins come as the policy re-issues
 *   them (by default v0.2 COSE envelopes); what an agent holds is what it presents.
 * - M verifier processes (verifier-process.ts, rotor's ReferenceVerifier), each registered with its
 *   own credential, pin the anchor root, refresh the anchor and CRL when their lifetimes run out,
 *   check in, and verify what the agents present: `rate` presentations per second in all.
 * - The rotations run one after another on the same identity through Temporal and the worker:
 *   personnel, scheduled, a rollback during adoption, an escalation to compromise during
 *   adoption. Adoption is held for the last two by a registered verifier that never checks in
 *   (registered verifiers stay in the gate while silent, src/store/verifiers.ts).
 *
 * Every result is counted by key, phase and second. A rejection is intended only when the
 * runbook makes it so, judged from what the harness saw the rotations do (never from the verdict
 * alone): the manifest's key is one a finished rotation condemned, and the verdict is the one that
 * condemnation produces at that time. REVOKED after the rotation's revoke step began (or after an
 * escalation); INVALID for an unknown key after the key left the anchor (the overlap's
 * decommission, or the escalation). An on-time agent's revoked manifest is false (rotor revoked
 * before it could pick up its twin); a late or never-fetching agent's is intended (the pickup gate
 * makes revocation wait for late agents it has seen fetching, so those should not occur). Anything else
 * (a new-key twin refused, a verifier without an anchor, EXPIRED) is false.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { Client, WorkflowHandle } from '@temporalio/client';
import { b64urlEncode, examineEnvelope, type RootSet, type Signer } from '../../src/manifest';
import { seedManifests } from '../../src/rotation/import';
import type { Pool } from '../../src/store/db';
import { createCredential } from '../../src/store/delivery';
import { pageManifests } from '../../src/store/manifests';
import { registerVerifier, retireVerifier } from '../../src/store/verifiers';
import type { ManifestInput } from '../../src/verifier/reference-verifier';
import type { CustodianKind, RotationPolicy, Trigger } from '../../src/workflows/policy';
import {
  type ControlRequest,
  escalateUpdate,
  type RotationInput,
  type RotationStatus,
  rollbackUpdate,
  rotationWorkflowId,
  statusQuery,
} from '../../src/workflows/rotation-api';
import { type RotorServe, startRotorServe } from '../../test/helpers/rotor-serve';
import type { VerifierProcessConfig } from './verifier-process';

const VERIFIER_SCRIPT = fileURLToPath(new URL('./verifier-process.ts', import.meta.url));

export interface HarnessStack {
  pool: Pool;
  databaseUrl: string;
  client: Client;
  taskQueue: string;
  custodian: CustodianKind;
  /** A new identity: first key active, anchor v1 signed by a fresh root; its signer and root. */
  initIdentity(identity: string): Promise<{ signer: Signer; root: RootSet }>;
  /** Called once `rotor serve` answers (the bench starts its worker with ROTOR_PUBLIC_URL then). */
  onServe?(baseUrl: string): Promise<void>;
}

export const SCENARIOS = ['personnel', 'scheduled', 'rollback', 'escalation'] as const;
export type ScenarioName = (typeof SCENARIOS)[number];

export interface HarnessOptions {
  identity: string;
  /** Agents (one seeded manifest each; at most 997 distinct agent ids). */
  agents: number;
  /** Honest verifier processes, each registered with its own credential. */
  verifiers: number;
  /** Presentations per second, all agents and verifiers together. */
  rate: number;
  scenarios: ScenarioName[];
  /** Cache lifetime of the anchor, the CRL and the agents' manifests, seconds. */
  maxAgeSeconds: number;
  /** Overlap rotations' timeline, seconds from t=0. */
  resignAtSeconds: number;
  revokeAtSeconds: number;
  decommissionAtSeconds: number;
  /** How long adoption is held before the rollback or escalation is sent. */
  holdSeconds: number;
  /** Quiet time before the first rotation and after each. */
  gapSeconds: number;
  /** Shares of late and never-fetching agents; the rest fetch on time. */
  lateShare: number;
  neverShare: number;
  /** A late agent's time between fetches. */
  lateFetchSeconds: number;
  /**
   * Adds a verifier pinned to a root that signed nothing (not registered, no check-in): every
   * verdict it gives is a rejection the classifier must call false. Shows the count can move.
   */
  mispinnedVerifier?: boolean;
  log: (line: string) => void;
}

type AgentKind = 'on-time' | 'late' | 'never';
type Result = 'VALID' | 'INVALID' | 'REVOKED' | 'EXPIRED';

interface Held {
  handle: number;
  manifestId: string;
  keyId: string;
}

interface Agent {
  id: string;
  kind: AgentKind;
  token: string;
  held?: Held;
  etag?: string;
  nextFetchAt: number;
  fetching: boolean;
}

interface VerifierProc {
  id: string;
  honest: boolean;
  child: ChildProcess;
  sent: Set<number>;
  outstanding: number;
  ready: Promise<number>;
  errors: string[];
  stopped: Promise<void>;
}

export interface Rejection {
  t: number;
  verifier: string;
  agent: string;
  agentKind: AgentKind;
  keyId: string;
  manifestId: string;
  result: Result;
  reason: string;
  anchorVersion: number;
  phase: string;
  intended: boolean;
  why: string;
}

export interface PhaseMark {
  /** ms since the harness began presenting. */
  at: number;
  label: string;
}

export interface ScenarioFigures {
  scenario: ScenarioName;
  outcome: string;
  oldKey: string;
  newKey: string;
  /** Workflow start to end, seconds. */
  durationSeconds: number;
  /** How long after its planned time the revocation began (the pickup gate waits for agents); null without one. */
  revokeLateSeconds: number | null;
  /** Results received in the scenario's window (its rotation and the quiet time after it). */
  windowSeconds: number;
  verifications: number;
  rate: number;
  intended: number;
  false: number;
  intendedByWhy: Record<string, number>;
}

export interface HarnessReport {
  agents: Record<AgentKind, number>;
  verifiers: number;
  targetRate: number;
  totalVerifications: number;
  seconds: number;
  rate: number;
  /** Presentations not sent because a verifier was a second behind. */
  skipped: number;
  counts: Record<string, Record<string, Record<Result, number>>>;
  keyLabels: Record<string, string>;
  scenarios: ScenarioFigures[];
  intended: number;
  false: number;
  falseByVerifier: Record<string, number>;
  intendedByWhy: Record<string, number>;
  falseSample: Rejection[];
  fetches: { ok: number; notModified: number; errors: number; pickups: number; envelopes: number };
  /** Per second (index) and key label: VALID, intended and false rejections. */
  series: Record<string, { valid: number[]; intended: number[]; false: number[] }>;
  marks: PhaseMark[];
  load: { cpus: number; loadavg1: { before: number; mean: number; max: number }; harnessCpuSeconds: number };
  verifierErrors: Record<string, string[]>;
}

interface Condemned {
  revokedFrom: number;
  distrustedFrom: number;
  compromise: boolean;
}

export async function runHarness(stack: HarnessStack, o: HarnessOptions): Promise<HarnessReport> {
  const cleanups: (() => Promise<void>)[] = [];
  try {
    return await run(stack, o, cleanups);
  } finally {
    for (const fn of cleanups.reverse()) await fn().catch((err) => o.log(`cleanup: ${String(err)}`));
  }
}

async function run(
  stack: HarnessStack,
  o: HarnessOptions,
  cleanups: (() => Promise<void>)[],
): Promise<HarnessReport> {
  const { pool } = stack;
  const log = o.log;
  const cpuStart = process.cpuUsage();

  // ---- identity, manifests, credentials ---------------------------------------------------------
  const { signer, root } = await stack.initIdentity(o.identity);
  await seedManifests(pool, signer, o.agents, { seed: 14 });
  const seeded = await pageManifests(pool, { keyId: signer.keyId, status: 'active', limit: 10_000 });
  const agentIds = [...new Set(seeded.map((m) => agentOf(m.text ?? '')))];
  agentIds.sort();
  const agents: Agent[] = [];
  // Deployment credentials cover roles by prefix; the other roles' agents each hold their own.
  const deploymentTokens = new Map<string, string>();
  const rng = mulberry(14);
  let perAgent = 0;
  for (const id of agentIds) {
    const role = /\/agent\/([a-z]+)-\d+$/.exec(id)?.[1] ?? 'other';
    let token: string;
    if (role === 'support' || role === 'billing' || role === 'triage') {
      const prefix = id.slice(0, id.lastIndexOf('/agent/') + 7) + role + '-';
      token =
        deploymentTokens.get(prefix) ??
        (
          await createCredential(pool, {
            kind: 'deployment',
            agentPrefixes: [prefix],
            label: `bench ${role}`,
          })
        ).token;
      deploymentTokens.set(prefix, token);
    } else {
      token = (await createCredential(pool, { kind: 'agent', agentId: id, label: 'bench agent' })).token;
      perAgent++;
    }
    // Drawn at random, so each kind is spread over the roles and credentials.
    const r = rng();
    const kind: AgentKind = r < o.neverShare ? 'never' : r < o.neverShare + o.lateShare ? 'late' : 'on-time';
    agents.push({ id, kind, token, nextFetchAt: 0, fetching: false });
  }
  const agentCounts = { 'on-time': 0, late: 0, never: 0 } as Record<AgentKind, number>;
  for (const a of agents) agentCounts[a.kind]++;
  log(
    `  ${agents.length} agents (${agentCounts['on-time']} on time, ${agentCounts.late} late, ${agentCounts.never} never fetching), ${deploymentTokens.size} deployment credentials and ${perAgent} per-agent ones`,
  );

  // ---- rotor serve -------------------------------------------------------------------------------
  const serve: RotorServe = await startRotorServe(stack.databaseUrl, {
    ROTOR_IDENTITY: o.identity,
    ROTOR_ANCHOR_MAX_AGE: String(o.maxAgeSeconds),
    ROTOR_CRL_MAX_AGE: String(o.maxAgeSeconds),
    ROTOR_MANIFEST_MAX_AGE: String(o.maxAgeSeconds),
    ROTOR_LOG_LEVEL: 'warn',
  });
  cleanups.push(() => serve.stop());
  const baseUrl = serve.baseUrl;
  await stack.onServe?.(baseUrl);
  log(`  rotor serve on ${baseUrl} (anchor, CRL and manifest max-age ${o.maxAgeSeconds} s)`);

  // ---- verifier processes ------------------------------------------------------------------------
  const rootKeys = root.keys.map((k) => b64urlEncode(k.publicKey));
  const procs: VerifierProc[] = [];
  const onResults = (proc: VerifierProc, batch: [number, Result, string, number][]) => {
    proc.outstanding -= batch.length;
    for (const [seq, result, reason, anchorVersion] of batch)
      received(proc, seq, result, reason, anchorVersion);
  };
  const startVerifier = (id: string, credential: string, keys: string[], honest: boolean) => {
    const config: VerifierProcessConfig = {
      id,
      baseUrl,
      identity: o.identity,
      credential,
      rootKeys: keys,
      rootThreshold: 1,
      refreshMs: 250,
      checkInMs: 1000,
    };
    const child = fork(VERIFIER_SCRIPT, [], {
      execArgv: ['--import', 'tsx'],
      env: { ...process.env, ROTOR_BENCH_VERIFIER: JSON.stringify(config) },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      // Structured clone over the channel: a v0.2 envelope goes as bytes.
      serialization: 'advanced',
    });
    let readyResolve: (v: number) => void = () => {};
    let stoppedResolve: () => void = () => {};
    const proc: VerifierProc = {
      id,
      honest,
      child,
      sent: new Set(),
      outstanding: 0,
      ready: new Promise<number>((resolve) => {
        readyResolve = resolve;
      }),
      errors: [],
      stopped: new Promise<void>((resolve) => {
        stoppedResolve = resolve;
      }),
    };
    child.on(
      'message',
      (msg: { t: string; b?: [number, Result, string, number][]; version?: number; message?: string }) => {
        if (msg.t === 'r') onResults(proc, msg.b!);
        else if (msg.t === 'ready') readyResolve(msg.version!);
        else if (msg.t === 'err' && proc.errors.length < 20) proc.errors.push(msg.message!);
      },
    );
    child.on('exit', () => stoppedResolve());
    procs.push(proc);
    cleanups.push(async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await proc.stopped;
    });
    return proc;
  };
  for (let i = 0; i < o.verifiers; i++) {
    const id = `bench-verifier-${i + 1}`;
    const { credential } = await registerVerifier(pool, { verifierId: id, identity: o.identity });
    startVerifier(id, credential, rootKeys, true);
  }
  if (o.mispinnedVerifier) startVerifier('mispinned', '', [b64urlEncode(randomBytes(32))], false);
  await withTimeout(
    Promise.all(procs.filter((p) => p.honest).map((p) => p.ready)),
    60_000,
    'the verifier processes to hold the anchor',
  );
  log(
    `  ${o.verifiers} verifier processes hold anchor v1${o.mispinnedVerifier ? ', plus one mis-pinned' : ''}`,
  );

  // ---- agents ------------------------------------------------------------------------------------
  /** Every manifest an agent held, once: v0.1 JSON text, or a v0.2 envelope's bytes. */
  const manifests = new Map<string, number>();
  const texts: ManifestInput[] = [];
  const hold = (a: Agent, body: ManifestInput): void => {
    const { manifestId, keyId } = identify(body);
    let handle = manifests.get(manifestId);
    if (handle === undefined) {
      handle = texts.length;
      texts.push(body);
      manifests.set(manifestId, handle);
    }
    if (a.held && a.held.manifestId !== manifestId) fetchStats.pickups++;
    a.held = { handle, manifestId, keyId };
  };
  const fetchStats = { ok: 0, notModified: 0, errors: 0, pickups: 0, envelopes: 0 };
  const fetchErrors: string[] = [];
  const maxAgeMs = o.maxAgeSeconds * 1000;
  const fetchManifest = async (a: Agent) => {
    a.fetching = true;
    try {
      const res = await fetch(`${baseUrl}/v1/agents/${encodeURIComponent(a.id)}/manifest`, {
        headers: { Authorization: `Bearer ${a.token}`, ...(a.etag ? { 'If-None-Match': a.etag } : {}) },
      });
      const maxAge = Number(
        /max-age=(\d+)/.exec(res.headers.get('cache-control') ?? '')?.[1] ?? o.maxAgeSeconds,
      );
      if (res.status === 304) {
        await res.arrayBuffer();
        fetchStats.notModified++;
      } else if (res.status === 200) {
        // A v0.2 twin comes as its COSE envelope (application/agent-manifest+cose), v0.1 as JSON.
        const cose = /cose/.test(res.headers.get('content-type') ?? '');
        const body: ManifestInput = cose ? new Uint8Array(await res.arrayBuffer()) : await res.text();
        fetchStats.ok++;
        if (cose) fetchStats.envelopes++;
        a.etag = res.headers.get('etag') ?? undefined;
        hold(a, body);
      } else {
        fetchStats.errors++;
        if (fetchErrors.length < 10)
          fetchErrors.push(`${a.id}: ${res.status} ${(await res.text()).slice(0, 200)}`);
      }
      const now = Date.now();
      a.nextFetchAt =
        a.kind === 'late'
          ? now + o.lateFetchSeconds * 1000 * (0.75 + rng() * 0.5)
          : now + maxAge * 1000 * (1 + rng() * 0.25);
    } catch (err) {
      fetchStats.errors++;
      if (fetchErrors.length < 10) fetchErrors.push(`${a.id}: ${String(err)}`);
      a.nextFetchAt = Date.now() + maxAgeMs;
    } finally {
      a.fetching = false;
    }
  };
  // Agents that never fetch were handed their manifest out of band (an image, a push): rotor never
  // sees them, which is the pickup gate's "never seen" case. The others take theirs at the start,
  // and late agents then wait a random part of their period.
  const originals = new Map(seeded.map((m) => [agentOf(m.text ?? ''), m.text ?? '']));
  for (const a of agents) {
    if (a.kind === 'never') {
      hold(a, originals.get(a.id)!);
      a.nextFetchAt = Number.POSITIVE_INFINITY;
    }
  }
  await mapLimit(
    agents.filter((a) => a.kind !== 'never'),
    16,
    fetchManifest,
  );
  fetchStats.pickups = 0;
  for (const a of agents) {
    if (a.kind === 'late') a.nextFetchAt = Date.now() + rng() * o.lateFetchSeconds * 1000;
  }
  if (agents.some((a) => !a.held))
    throw new Error(`agents without a manifest after the first fetch: ${fetchErrors[0]}`);
  let inFlight = 0;
  const fetchTimer = setInterval(() => {
    const now = Date.now();
    for (const a of agents) {
      if (inFlight >= 24) break;
      if (a.fetching || a.nextFetchAt > now) continue;
      inFlight++;
      void fetchManifest(a).finally(() => {
        inFlight--;
      });
    }
  }, 50);
  cleanups.push(async () => clearInterval(fetchTimer));

  // ---- presenting and counting -------------------------------------------------------------------
  const t0 = Date.now();
  let phase = 'before';
  const marks: PhaseMark[] = [{ at: 0, label: 'before' }];
  const pending = new Map<number, { agent: Agent; held: Held; at: number }>();
  const rejections: Rejection[] = [];
  const counts: Record<string, Record<string, Record<Result, number>>> = {};
  const validPerSecond = new Map<string, number[]>();
  const resultTimes: number[] = [];
  let seq = 0;
  let skipped = 0;
  let total = 0;
  const keyLabels = new Map<string, string>([[signer.keyId, 'K0']]);
  const label = (keyId: string) => {
    let l = keyLabels.get(keyId);
    if (!l) {
      l = `K${keyLabels.size}`;
      keyLabels.set(keyId, l);
    }
    return l;
  };
  function received(proc: VerifierProc, s: number, result: Result, reason: string, anchorVersion: number) {
    const p = pending.get(s);
    if (!p) return;
    pending.delete(s);
    const now = Date.now();
    total++;
    resultTimes.push(now);
    const key = label(p.held.keyId);
    const byKey = counts[phase] ?? {};
    counts[phase] = byKey;
    const byResult = byKey[key] ?? { VALID: 0, INVALID: 0, REVOKED: 0, EXPIRED: 0 };
    byKey[key] = byResult;
    byResult[result]++;
    if (result === 'VALID') {
      const sec = Math.floor((now - t0) / 1000);
      const arr = validPerSecond.get(key) ?? [];
      arr[sec] = (arr[sec] ?? 0) + 1;
      validPerSecond.set(key, arr);
      return;
    }
    rejections.push({
      t: now,
      verifier: proc.id,
      agent: p.agent.id,
      agentKind: p.agent.kind,
      keyId: p.held.keyId,
      manifestId: p.held.manifestId,
      result,
      reason,
      anchorVersion,
      phase,
      intended: false,
      why: '',
    });
  }
  let cursor = 0;
  let due = 0;
  let last = Date.now();
  const TICK_MS = 50;
  const presentTimer = setInterval(() => {
    const now = Date.now();
    due += (o.rate * (now - last)) / 1000;
    last = now;
    const n = Math.floor(due);
    due -= n;
    const batches = new Map<VerifierProc, [number, number][]>();
    for (let i = 0; i < n; i++) {
      const agent = agents[cursor++ % agents.length]!;
      const held = agent.held;
      if (!held) continue;
      const proc = procs[Math.floor(rng() * procs.length)]!;
      // A verifier a second behind is not sent more: the rate printed is what was verified.
      if (proc.outstanding > o.rate) {
        skipped++;
        continue;
      }
      if (!proc.sent.has(held.handle)) {
        proc.sent.add(held.handle);
        proc.child.send({ t: 'm', id: held.handle, body: texts[held.handle] });
      }
      const s = ++seq;
      pending.set(s, { agent, held, at: now });
      const b = batches.get(proc) ?? [];
      batches.set(proc, b);
      b.push([s, held.handle]);
    }
    for (const [proc, b] of batches) {
      proc.outstanding += b.length;
      proc.child.send({ t: 'v', b });
    }
  }, TICK_MS);
  cleanups.push(async () => clearInterval(presentTimer));

  // Machine load, sampled while the harness runs (the machine is shared: its load before counts too).
  const loadBefore = loadavg()[0]!;
  const loads: number[] = [];
  const loadTimer = setInterval(() => loads.push(loadavg()[0]!), 2000);
  cleanups.push(async () => clearInterval(loadTimer));

  const setPhase = (p: string) => {
    if (p === phase) return;
    phase = p;
    marks.push({ at: Date.now() - t0, label: p });
  };

  // ---- the rotations -----------------------------------------------------------------------------
  const condemned = new Map<string, Condemned>();
  const scenarioRuns: {
    scenario: ScenarioName;
    status: RotationStatus;
    windowStart: number;
    windowEnd: number;
  }[] = [];
  await sleep(o.gapSeconds * 1000);
  for (const [i, scenario] of o.scenarios.entries()) {
    const windowStart = Date.now();
    const status = await rotate(stack, o, scenario, i, setPhase, log);
    const started = Date.parse(status.startedAt);
    const at = (step: string) => {
      const e = status.timeline.find((x) => x.step === step && x.actualStart && x.note !== 'compromise path');
      return e?.actualStart ? Date.parse(e.actualStart) : undefined;
    };
    if (status.phase === 'completed' && status.oldKeyId) {
      if (status.escalation) {
        const escalatedAt = Date.parse(status.escalation.at);
        condemned.set(status.oldKeyId, {
          revokedFrom: escalatedAt,
          distrustedFrom: escalatedAt,
          compromise: true,
        });
      } else {
        const revokedFrom = at('revoke');
        const distrustedFrom = at('decommission');
        if (revokedFrom === undefined || distrustedFrom === undefined)
          throw new Error(`${scenario}: the completed rotation has no revoke or decommission start`);
        condemned.set(status.oldKeyId, { revokedFrom, distrustedFrom, compromise: false });
      }
    }
    if (status.newKeyId) label(status.newKeyId);
    await sleep(o.gapSeconds * 1000);
    scenarioRuns.push({ scenario, status, windowStart, windowEnd: Date.now() });
    log(
      `  ${scenario}: ${status.phase}${status.outcome ? ` (${status.outcome.slice(0, 100)})` : ''} in ${((Date.parse(status.endedAt ?? status.startedAt) - started) / 1000).toFixed(1)} s`,
    );
  }

  // ---- stop, then classify -----------------------------------------------------------------------
  clearInterval(presentTimer);
  clearInterval(fetchTimer);
  const drainUntil = Date.now() + 10_000;
  while (pending.size > 0 && Date.now() < drainUntil) await sleep(100);
  const tEnd = Date.now();
  for (const p of procs) {
    if (p.child.connected) p.child.send({ t: 'stop' });
  }
  await withTimeout(Promise.all(procs.map((p) => p.stopped)), 15_000, 'the verifier processes to stop').catch(
    () => {},
  );

  const intendedByWhy: Record<string, number> = {};
  const falseByVerifier: Record<string, number> = {};
  for (const r of rejections) {
    const verdict = classify(r, condemned);
    r.intended = verdict.intended;
    r.why = verdict.why;
    if (r.intended) intendedByWhy[r.why] = (intendedByWhy[r.why] ?? 0) + 1;
    else falseByVerifier[r.verifier] = (falseByVerifier[r.verifier] ?? 0) + 1;
  }

  // Per second, per key: VALID, intended, false.
  const seconds = Math.ceil((tEnd - t0) / 1000);
  const series: HarnessReport['series'] = {};
  const row = (key: string) =>
    (series[key] ??= {
      valid: new Array(seconds).fill(0),
      intended: new Array(seconds).fill(0),
      false: new Array(seconds).fill(0),
    });
  for (const [key, arr] of validPerSecond) {
    const s = row(key);
    for (let i = 0; i < seconds; i++) s.valid[i] = arr[i] ?? 0;
  }
  for (const r of rejections) {
    const sec = Math.min(seconds - 1, Math.floor((r.t - t0) / 1000));
    row(label(r.keyId))[r.intended ? 'intended' : 'false'][sec]!++;
  }

  const scenarios: ScenarioFigures[] = scenarioRuns.map(({ scenario, status, windowStart, windowEnd }) => {
    const inWindow = (t: number) => t >= windowStart && t < windowEnd;
    const verifications = resultTimes.filter(inWindow).length;
    const rs = rejections.filter((r) => inWindow(r.t));
    const why: Record<string, number> = {};
    for (const r of rs) if (r.intended) why[r.why] = (why[r.why] ?? 0) + 1;
    return {
      scenario,
      outcome: status.phase,
      oldKey: label(status.oldKeyId ?? ''),
      newKey: status.newKeyId ? label(status.newKeyId) : '-',
      durationSeconds: (Date.parse(status.endedAt ?? status.startedAt) - Date.parse(status.startedAt)) / 1000,
      revokeLateSeconds: revokeLate(status),
      windowSeconds: (windowEnd - windowStart) / 1000,
      verifications,
      rate: verifications / ((windowEnd - windowStart) / 1000),
      intended: rs.filter((r) => r.intended).length,
      false: rs.filter((r) => !r.intended).length,
      intendedByWhy: why,
    };
  });
  const cpu = process.cpuUsage(cpuStart);
  const falseOnes = rejections.filter((r) => !r.intended);
  return {
    agents: agentCounts,
    verifiers: o.verifiers,
    targetRate: o.rate,
    totalVerifications: total,
    seconds: (tEnd - t0) / 1000,
    rate: total / ((tEnd - t0) / 1000),
    skipped,
    counts,
    keyLabels: Object.fromEntries([...keyLabels].map(([k, l]) => [l, k])),
    scenarios,
    intended: rejections.length - falseOnes.length,
    false: falseOnes.length,
    falseByVerifier,
    intendedByWhy,
    falseSample: sample(falseOnes, 10),
    fetches: fetchStats,
    series,
    marks,
    load: {
      cpus: cpus().length,
      loadavg1: {
        before: loadBefore,
        mean: loads.length ? loads.reduce((a, b) => a + b, 0) / loads.length : loadavg()[0]!,
        max: loads.length ? Math.max(...loads) : loadavg()[0]!,
      },
      harnessCpuSeconds: (cpu.user + cpu.system) / 1e6,
    },
    verifierErrors: Object.fromEntries(procs.map((p) => [p.id, p.errors])),
  };
}

/**
 * Intended or false, from what the rotations did (the `condemned` keys), the verdict and the
 * agent. See the file comment for the rules.
 */
export function classify(
  r: Pick<Rejection, 't' | 'keyId' | 'result' | 'reason' | 'agentKind'>,
  condemned: Map<string, Condemned>,
): { intended: boolean; why: string } {
  const c = condemned.get(r.keyId);
  if (!c) return { intended: false, why: `${r.result}/${r.reason}: key not condemned by any rotation` };
  const revoked = r.result === 'REVOKED' && r.t >= c.revokedFrom;
  const distrusted = r.result === 'INVALID' && r.reason === 'unknown_key' && r.t >= c.distrustedFrom;
  if (!revoked && !distrusted)
    return { intended: false, why: `${r.result}/${r.reason}: not what the condemnation of its key produces` };
  if (c.compromise) return { intended: true, why: 'compromise: old-key manifest' };
  if (r.agentKind === 'never')
    return { intended: true, why: 'revoked manifest: agent never fetches (given its manifest out of band)' };
  if (r.agentKind === 'late')
    return { intended: true, why: 'revoked manifest: late agent had not picked up' };
  return { intended: false, why: `${r.result}/${r.reason}: an on-time agent still held a revoked manifest` };
}

async function rotate(
  stack: HarnessStack,
  o: HarnessOptions,
  scenario: ScenarioName,
  index: number,
  setPhase: (p: string) => void,
  log: (line: string) => void,
): Promise<RotationStatus> {
  const held = scenario === 'rollback' || scenario === 'escalation';
  const holdout = `bench-holdout-${index}-${randomBytes(3).toString('hex')}`;
  if (held) await registerVerifier(stack.pool, { verifierId: holdout, identity: o.identity });
  const trigger: Trigger = scenario === 'scheduled' ? 'scheduled' : 'personnel';
  const far = 3600;
  const policy: Partial<RotationPolicy> = {
    resignAtSeconds: o.resignAtSeconds,
    adoptBySeconds: held ? far : o.revokeAtSeconds,
    revokeAtSeconds: held ? far : o.revokeAtSeconds,
    decommissionAtSeconds: held ? far + 1 : o.decommissionAtSeconds,
    anchorMaxAgeSeconds: o.maxAgeSeconds,
    adoptionMarginSeconds: 0,
    pollSeconds: 1,
    gateSliceSeconds: 1,
    verifierLivenessSeconds: 60,
    allowSoftwareCustodian: true,
    minKeyAgeDays: 0,
    // The pickup gate (policy default on) waits for agents seen fetching; never-seen ones hold it
    // only for the agents' cache lifetime plus a margin after release.
    deliveryMaxAgeSeconds: o.maxAgeSeconds,
    pickupMarginSeconds: 1,
    pickupGraceSeconds: 120,
    batchSize: 200,
    chunkSize: 1000,
  };
  const input: RotationInput = {
    identity: o.identity,
    trigger,
    policy,
    custodian: stack.custodian,
    requestedBy: 'bench:zero-downtime',
    reason: `zero-downtime harness: ${scenario}`,
  };
  const handle: WorkflowHandle = await stack.client.workflow.start('rotationWorkflow', {
    taskQueue: stack.taskQueue,
    workflowId: rotationWorkflowId(o.identity),
    args: [input],
  });
  const result = handle.result() as Promise<RotationStatus>;
  let done = false;
  result.then(
    () => {
      done = true;
    },
    () => {
      done = true;
    },
  );
  let adoptionSince: number | undefined;
  let sent = false;
  const deadline = Date.now() + 300_000;
  while (!done) {
    const s = await handle.query(statusQuery).catch(() => undefined);
    if (s) {
      // 'waiting' says for which step: before revoke and before decommission are different times.
      const next = s.timeline.find((e) => !e.actualStart && !e.skipped)?.step;
      const step = s.phase === 'waiting' && next ? `waiting→${next}` : s.phase;
      // After an escalation the same step names come round again, on the compromise path.
      setPhase(
        `${scenario}:${s.escalation && !['completed', 'failed'].includes(s.phase) ? `compromise ${step}` : step}`,
      );
      if (s.paused && !sent)
        throw new Error(`${scenario}: the rotation paused in ${s.phase}: ${s.pauseReason}`);
      if (held && !sent && s.phase === 'await-adoption') {
        adoptionSince ??= Date.now();
        if (Date.now() - adoptionSince >= o.holdSeconds * 1000) {
          sent = true;
          const req: { args: [ControlRequest] } = {
            args: [{ reason: `harness: ${scenario} during adoption`, by: 'bench' }],
          };
          if (scenario === 'rollback') await handle.executeUpdate(rollbackUpdate, req);
          else await handle.executeUpdate(escalateUpdate, req);
          log(`  ${scenario}: sent during await-adoption (held ${o.holdSeconds} s by ${holdout})`);
        }
      }
    }
    if (Date.now() > deadline)
      throw new Error(`${scenario}: the rotation did not end in 300 s (${s?.phase})`);
    await sleep(250);
  }
  const status = await result;
  setPhase(`${scenario}:${status.phase}`);
  if (held) await retireVerifier(stack.pool, holdout, 'harness scenario over');
  return status;
}

// ---- small helpers ---------------------------------------------------------------------------------

function revokeLate(status: RotationStatus): number | null {
  const e = status.timeline.find((x) => x.step === 'revoke' && x.actualStart && x.note !== 'compromise path');
  return e?.actualStart ? (Date.parse(e.actualStart) - Date.parse(e.plannedAt)) / 1000 : null;
}

function agentOf(text: string): string {
  return (JSON.parse(text) as { agent_id: string }).agent_id;
}

/** manifest_id and bare hex key_id of a v0.1 text or a v0.2 envelope. */
function identify(body: ManifestInput): { manifestId: string; keyId: string } {
  if (typeof body !== 'string') {
    const e = examineEnvelope(body);
    return { manifestId: e.manifestId, keyId: e.keyId };
  }
  const m = JSON.parse(body) as { manifest_id: string; signature: { key_id: string } };
  return { manifestId: m.manifest_id, keyId: m.signature.key_id.replace(/^sha256:/, '') };
}

function mulberry(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms / 1000} s waiting for ${what}`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

async function mapLimit<T>(items: T[], limit: number, fn: (t: T) => Promise<void>): Promise<void> {
  let i = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (i < items.length) await fn(items[i++]!);
    }),
  );
}

function sample<T>(xs: T[], n: number): T[] {
  if (xs.length <= n) return xs;
  const step = xs.length / n;
  return Array.from({ length: n }, (_, i) => xs[Math.floor(i * step)]!);
}
