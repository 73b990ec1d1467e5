/**
 * `rotor demo`: the whole job on one machine with nothing configured. It starts everything a
 * rotation needs (Temporal dev server, Postgres, custodian, HTTP service, worker, two reference
 * verifiers), seeds an identity with manifests, runs a scheduled rotation on a compressed
 * timeline while showing its progress, writes what a verifier would need to check the result,
 * checks it, and stops all it started, also on Ctrl-C.
 */
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { initIdentity } from '../activities/identity';
import type { RotorConfig } from '../config';
import type { KeyCustodian } from '../custody/index';
import { errorMessage, RotorError, UsageError } from '../errors';
import { convertV01ToV02, signCoseRoot } from '../manifest';
import { importStream } from '../rotation/import';
import { StopList, startRotorStack } from '../rotation/stack';
import { startRotation } from '../rotation/start';
import type { Pool } from '../store/db';
import type { ImportItem } from '../store/manifests';
import { pageManifests, statsByVersion } from '../store/manifests';
import { registerVerifier } from '../store/verifiers';
import { syntheticManifests } from '../synthetic/manifests';
import type { CustodianKind } from '../workflows/policy';
import { type RotationInput, type RotationStatus, statusQuery } from '../workflows/rotation-api';
import { OUTPUT_FILES, verifyOutputs, writeOutputs } from './outputs';
import { buildSummary, type DemoSummary, renderSummary, type VerifierSummary } from './summary';
import { demoPolicy } from './timeline';
import { startDemoVerifiers } from './verifiers';
import { LiveView, type Output } from './view';

export const DEMO_IDENTITY = 'demo';
const TASK_QUEUE = 'rotor';
const NAMESPACE = 'default';
const VERIFIER_IDS = ['sidecar-a', 'sidecar-b'];
const VERIFIER_INTERVAL_MS = 1000;

export interface DemoOptions {
  count: number;
  outDir: string;
  timelineSeconds: number;
  /**
   * The process's configuration (src/config.ts): DATABASE_URL's server, the custodian
   * (ROTOR_CUSTODIAN, ROTOR_PKCS11_*), where the Temporal CLI comes from, ROTOR_DEMO_FAIL_AT.
   */
  config: Pick<RotorConfig, 'databaseUrl' | 'databaseUrlSet' | 'custody' | 'temporalTools' | 'demoFailAt'>;
  /** Where progress goes (stderr). */
  out: Output;
  /** Aborted on Ctrl-C: the demo stops what it started and throws DemoInterrupted. */
  signal: AbortSignal;
}

/**
 * The points at which the demo has started one more thing. `ROTOR_DEMO_FAIL_AT=<stage>` makes the
 * demo fail right there, so a test can check that every failure stops all it started.
 */
export const DEMO_STAGES = [
  'infrastructure',
  'migrations',
  'custodian',
  'http',
  'seed',
  'verifiers',
  'worker',
  'rotation',
] as const;
export type DemoStage = (typeof DEMO_STAGES)[number];

export class DemoInterrupted extends RotorError {
  constructor() {
    super('interrupted: stopped everything the demo started', 'DEMO_INTERRUPTED', 130);
  }
}

/** Runs the demo; resolves with the summary when the rotation completed and every output verifies. */
export async function runDemo(options: DemoOptions): Promise<DemoSummary> {
  const say = (line: string) => options.out.write(`${line}\n`);
  const cleanups = new StopList((line) => say(`rotor demo: ${line}`));
  try {
    return await demo(options, cleanups, say);
  } finally {
    if (options.signal.aborted) say('stopping…');
    await cleanups.run();
  }
}

async function demo(
  options: DemoOptions,
  cleanups: StopList,
  say: (line: string) => void,
): Promise<DemoSummary> {
  const { config, signal } = options;
  const check = () => {
    if (signal.aborted) throw new DemoInterrupted();
  };
  const failAt = config.demoFailAt;
  if (failAt && !(DEMO_STAGES as readonly string[]).includes(failAt)) {
    throw new UsageError(`ROTOR_DEMO_FAIL_AT must be one of ${DEMO_STAGES.join(', ')}, got '${failAt}'`);
  }
  /** Interrupted, or the stage a test asked to fail at. */
  const reached = (stage: DemoStage) => {
    check();
    if (stage === failAt) {
      throw new RotorError(
        `injected failure at stage ${stage} (ROTOR_DEMO_FAIL_AT)`,
        'DEMO_INJECTED_FAILURE',
      );
    }
  };
  const policy = demoPolicy(options.timelineSeconds);
  const outDir = resolve(options.outDir);
  const started = Date.now();
  const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)}s`;
  say(
    `rotor demo: a scheduled rotation of ${options.count} manifests with the runbook's timeline compressed to ${options.timelineSeconds} s (Ctrl-C stops everything)`,
  );

  const kind: CustodianKind = config.custody.kind;
  // Parsed before anything starts: a PKCS#11 custodian without a token or PIN stops the demo here.
  const pkcs11 = kind === 'pkcs11' ? config.custody.pkcs11 : undefined;
  // Activities' lines and the SDK's warnings: printed until the live view takes them.
  let notice = (line: string) => say(`  notice: ${line}`);
  installQuietRuntime((line) => notice(line));
  // The worker starts after the verifiers (its own stage), so the rotation begins with them polling.
  const stack = await startRotorStack({
    // DATABASE_URL given: a throwaway database on its server; else an embedded PostgreSQL.
    postgres: { throwaway: { serverUrl: config.databaseUrlSet ? config.databaseUrl : undefined } },
    temporal: { devServer: { namespace: NAMESPACE, tools: config.temporalTools }, taskQueue: TASK_QUEUE },
    custodian: pkcs11 ? { kind: 'pkcs11', pkcs11 } : { kind: 'software' },
    http: {
      identity: DEMO_IDENTITY,
      anchorMaxAgeSeconds: policy.anchorMaxAgeSeconds,
      // Verifiers learn of revocations within the compressed window too.
      crlCacheSeconds: policy.anchorMaxAgeSeconds,
    },
    settings: { revokedBy: 'urn:rotor:key-rotation' },
    log: (line) => notice(line),
    startWorker: false,
    onStarted(stage, parts) {
      if (stage === 'infrastructure') {
        say(`  [${elapsed()}] Temporal dev server on ${parts.temporalAddress}`);
        say(`  [${elapsed()}] Postgres: ${parts.database?.where}`);
      } else if (stage === 'custodian') {
        say(
          `  [${elapsed()}] custodian: ${kind === 'pkcs11' ? `PKCS#11 token ${pkcs11?.tokenLabel} (ROTOR_CUSTODIAN=pkcs11)` : 'software, in a temp folder (set ROTOR_CUSTODIAN=pkcs11 and ROTOR_PKCS11_* for an HSM)'}`,
        );
      } else if (stage === 'http') {
        say(
          `  [${elapsed()}] HTTP service on ${parts.baseUrl} (trust anchor max-age ${policy.anchorMaxAgeSeconds} s)`,
        );
      }
      reached(stage as DemoStage);
    },
  });
  cleanups.add('the rotor stack', () => stack.stop());
  const { pool, custodian, baseUrl, database } = stack;

  // Each verifier checks in with a credential of its own, bound to its id and the identity.
  const credentials: Record<string, string> = {};
  for (const id of VERIFIER_IDS) {
    credentials[id] = (await registerVerifier(pool, { verifierId: id, identity: DEMO_IDENTITY })).credential;
  }

  const { key, rootKeys } = await initIdentity(
    pool,
    custodian,
    DEMO_IDENTITY,
    `rotor-demo-${randomBytes(4).toString('hex')}`,
  );
  say(
    `  [${elapsed()}] identity ${DEMO_IDENTITY}: key ${key.keyId.slice(0, 16)}… active, trust anchor v1 published`,
  );
  const oldManifestIds = await seed(
    pool,
    await custodian.signer(key.handle),
    options.count,
    key.keyId,
    check,
  );
  const versionsBefore = versionCounts(await statsByVersion(pool));
  say(
    `  [${elapsed()}] seeded ${oldManifestIds.size} signed manifests (${versionsBefore['0.1']} v0.1, ${versionsBefore['0.2']} v0.2)`,
  );
  reached('seed');

  // The verifiers pin the anchor root, as a sidecar configured out of band would (issue 12).
  const verifiers = startDemoVerifiers({
    pool,
    baseUrl,
    identity: DEMO_IDENTITY,
    root: { threshold: 1, keys: rootKeys.map((k) => ({ kid: k.keyId, publicKey: k.publicKey })) },
    credentials,
    ids: VERIFIER_IDS,
    intervalMs: VERIFIER_INTERVAL_MS,
  });
  cleanups.add('the reference verifiers', () => verifiers.stop());
  say(
    `  [${elapsed()}] reference verifiers ${VERIFIER_IDS.join(', ')} polling every ${VERIFIER_INTERVAL_MS / 1000} s`,
  );
  reached('verifiers');

  const view = new LiveView(options.out, options.timelineSeconds);
  notice = (line) => view.note(`  notice: ${line}`);
  await stack.startWorker();
  say(`  [${elapsed()}] worker on task queue ${TASK_QUEUE}`);
  reached('worker');

  const connection = await Connection.connect({ address: stack.temporalAddress! });
  // The result's long poll retries on its own; it is cancelled before its channel closes under it.
  const clientCalls = new AbortController();
  cleanups.add('the Temporal client', () => {
    clientCalls.abort();
    return connection.close();
  });
  const client = new Client({ connection, namespace: NAMESPACE });
  const input: RotationInput = {
    identity: DEMO_IDENTITY,
    trigger: 'scheduled',
    policy,
    custodian: kind,
    requestedBy: 'rotor-demo',
    reason: 'rotor demo: scheduled rotation on a compressed timeline',
  };
  const { workflowId } = await startRotation(
    { client, config: { namespace: NAMESPACE, taskQueue: TASK_QUEUE } },
    input,
  );
  const handle = client.workflow.getHandle(workflowId);
  say(`  [${elapsed()}] started rotation ${handle.workflowId}`);
  reached('rotation');
  say('');

  const result = client.withAbortSignal(clientCalls.signal, () => handle.result() as Promise<RotationStatus>);
  // Observed now so an early failure is not an unhandled rejection; it is awaited (and thrown) later.
  result.catch(() => {});
  const adoptedAt = new Map<string, number>();
  const acceptedAt = new Map<string, number>();
  /** When each verifier first held the new anchor, and first verified a new-key manifest VALID. */
  const noteAdoption = (s: RotationStatus) => {
    const t = Math.round((Date.now() - Date.parse(s.startedAt)) / 1000);
    // Read off the verifiers themselves: the rotation looks only every pollSeconds, and asks about
    // acceptance only when the overlap closes.
    for (const v of verifiers.verifiers) {
      const id = v.verifier.id;
      if (
        s.anchorVersion &&
        s.anchorVersion > 1 &&
        v.verifier.anchorVersion >= s.anchorVersion &&
        !adoptedAt.has(id)
      ) {
        adoptedAt.set(id, t);
      }
      if (s.newKeyId && (v.verifier.validCounts[s.newKeyId] ?? 0) > 0 && !acceptedAt.has(id)) {
        acceptedAt.set(id, t);
      }
    }
  };
  const deadline = Date.now() + (options.timelineSeconds * 3 + 120) * 1000;
  let status: RotationStatus | undefined;
  for (;;) {
    check();
    if (stack.workerFailure)
      throw new RotorError(`the worker stopped: ${stack.workerFailure}`, 'DEMO_WORKER');
    const ended = await Promise.race([
      result.then(
        () => true,
        () => true,
      ),
      sleep(1000).then(() => false),
    ]);
    if (ended) {
      try {
        status = await result;
      } catch (err) {
        const cause = (err as { cause?: unknown }).cause ?? err;
        throw new RotorError(
          `the rotation workflow failed${status ? ` in phase ${status.phase}` : ''}: ${errorMessage(cause)}`,
          'DEMO_ROTATION_FAILED',
        );
      }
      break;
    }
    try {
      status = await handle.query(statusQuery);
    } catch {
      continue; // The first workflow task may not have run yet.
    }
    noteAdoption(status);
    view.update(status, verifiers.verifiers);
    // Nobody steers a demo: a pause means a step failed or a gate's bound passed.
    if (status.paused) {
      throw new RotorError(
        `the rotation paused in phase ${status.phase}: ${status.pauseReason ?? 'no reason given'}${status.blockers.length ? ` (${status.blockers.join('; ')})` : ''}`,
        'DEMO_ROTATION_PAUSED',
      );
    }
    if (Date.now() > deadline) {
      throw new RotorError(
        `the rotation did not end within ${Math.round((deadline - started) / 1000)} s; last phase ${status.phase}${status.blockers.length ? ` (${status.blockers.join('; ')})` : ''}`,
        'DEMO_ROTATION_TIMEOUT',
      );
    }
  }
  noteAdoption(status);
  view.update(status, verifiers.verifiers);
  view.done();
  await verifiers.stop();

  const written = await writeOutputs(pool, baseUrl, outDir);
  const verification = await verifyOutputs(outDir, {
    oldManifestIds,
    newKeyId: status.newKeyId ?? '(no new key)',
    now: new Date(),
    root: { threshold: 1, keys: rootKeys.map((k) => ({ kid: k.keyId, publicKey: k.publicKey })) },
  });
  const verifierSummaries: VerifierSummary[] = verifiers.verifiers.map((v) => ({
    id: v.verifier.id,
    anchorVersion: v.verifier.anchorVersion,
    trustedKeyIds: v.verifier.trustedKeyIds,
    verdicts: { ...v.tally },
    validByKey: v.verifier.validCounts,
    adoptedAtSeconds: adoptedAt.get(v.verifier.id) ?? null,
    acceptedNewKeyAtSeconds: acceptedAt.get(v.verifier.id) ?? null,
  }));
  const versionsAfter = versionCounts(await statsByVersion(pool), 'active');
  const summary = buildSummary({
    status,
    timelineSeconds: options.timelineSeconds,
    seeded: oldManifestIds.size,
    versions: { before: versionsBefore, after: versionsAfter },
    custodian: kind,
    written,
    verification,
    verifiers: verifierSummaries,
    environment: {
      temporal: `dev server ${stack.temporalAddress}`,
      database:
        database?.kind === 'embedded' ? 'embedded PostgreSQL' : `database ${database?.name} (dropped)`,
      custodian: kind,
    },
    outDir,
  });
  await writeFile(join(outDir, OUTPUT_FILES.summary), `${JSON.stringify(summary, null, 2)}\n`);
  say('');
  options.out.write(renderSummary(summary, status));

  const failures: string[] = [];
  if (status.phase !== 'completed')
    failures.push(`the rotation ended ${status.phase}: ${status.outcome ?? 'no outcome given'}`);
  if (!verification.ok)
    failures.push(`the outputs do not verify: ${verification.problems[0] ?? 'see summary.json'}`);
  if (failures.length > 0) throw new RotorError(`demo failed: ${failures.join('; ')}`, 'DEMO_FAILED');
  return summary;
}

/** Every V02_EVERY-th seeded manifest is a v0.2 envelope, the others v0.1 texts. */
const V02_EVERY = 4;

/** Seeds `count` manifests signed by the identity's first key; returns their manifest_ids. */
async function seed(
  pool: Pool,
  signer: Awaited<ReturnType<KeyCustodian['signer']>>,
  count: number,
  keyId: string,
  check: () => void,
): Promise<Set<string>> {
  async function* items(): AsyncGenerator<ImportItem> {
    let n = 0;
    for await (const text of syntheticManifests(count, signer, { seed: 7 })) {
      n++;
      if (n % V02_EVERY === 0) {
        // A mixed store, as an issuer has it after 2026-11-30: every fourth manifest is v0.2,
        // the same document converted (src/manifest/reissue-cose.ts) and signed as a COSE_Sign1.
        const { envelope } = await signCoseRoot(convertV01ToV02(text).manifest, signer);
        yield { envelope, source: `seed:${n}` };
      } else yield { text, source: `seed:${n}` };
    }
  }
  await importStream(pool, items(), {
    onRejected: (r) => {
      throw new RotorError(`seeding rejected ${r.source}: ${r.reason}`, 'DEMO_SEED');
    },
    afterBatch: check,
  });
  const ids = new Set<string>();
  let after: string | null = null;
  for (;;) {
    const page = await pageManifests(pool, { keyId, status: 'active', afterManifestId: after, limit: 1000 });
    if (page.length === 0) return ids;
    for (const row of page) ids.add(row.manifestId);
    after = page.at(-1)!.manifestId;
  }
}

/** Manifests per version (only those in `status` when given). */
function versionCounts(
  stats: Awaited<ReturnType<typeof statsByVersion>>,
  status?: string,
): { '0.1': number; '0.2': number } {
  const out = { '0.1': 0, '0.2': 0 };
  for (const s of stats) if (status === undefined || s.status === status) out[s.version] += s.count;
  return out;
}

/**
 * The SDK logs each worker state change at INFO and stops workers on signals itself; the demo
 * shows only warnings (as notices) and stops its worker in its own order.
 */
function installQuietRuntime(notice: (line: string) => void): void {
  try {
    Runtime.install({
      logger: new DefaultLogger('WARN', (entry) => notice(`temporal: ${entry.message}`)),
      // The core's own retries of a lost connection are noise once the demo is stopping.
      telemetryOptions: { logging: { filter: { core: 'ERROR', other: 'ERROR' }, forward: {} } },
      shutdownSignals: [],
    });
  } catch {
    // Already installed in this process (a second demo run in one process): keep that one.
  }
}
