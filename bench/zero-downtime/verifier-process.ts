/**
 * One verifier process of the zero-downtime harness (bench/zero-downtime/harness.ts): a sidecar
 * built on rotor's ReferenceVerifier. It pins the anchor root it is given, refreshes the signed
 * anchor and the CRL whenever their cache lifetimes run out (the verifier's own `refresh()` asks
 * only for what is stale), checks in with its own credential every second, and verifies what the
 * harness's agents present to it, answering each presentation with its verdict.
 *
 * Messages over the IPC channel (child_process.fork):
 *   in:  {t:'m', id, body}        a manifest (v0.1 text or v0.2 envelope bytes), sent once, later named by id
 *        {t:'v', b:[[seq, id]…]}  verify these presentations
 *        {t:'stop'}
 *   out: {t:'ready', version}     holds a trusted anchor
 *        {t:'r', b:[[seq, result, reason, anchorVersion]…]}
 *        {t:'err', message}       a failed refresh or check-in (the loop carries on, as a sidecar does)
 *        {t:'stopped', valid, rejected}
 */
import { b64urlDecode, rootSetFromPublicKeys } from '../../src/manifest';
import { rejectionReason } from '../../src/manifest/rejection';
import { type ManifestInput, ReferenceVerifier } from '../../src/verifier/reference-verifier';

export interface VerifierProcessConfig {
  id: string;
  baseUrl: string;
  identity: string;
  /** Its own check-in credential (rotor verifier register); '' for one that does not check in. */
  credential: string;
  /** Base64url public keys of the pinned anchor root. */
  rootKeys: string[];
  rootThreshold: number;
  refreshMs: number;
  checkInMs: number;
}

type Incoming =
  | { t: 'm'; id: number; body: ManifestInput }
  | { t: 'v'; b: [number, number][] }
  | { t: 'stop' };

const send = (msg: unknown) => {
  if (process.connected) process.send?.(msg);
};

function main(): void {
  const raw = process.env.ROTOR_BENCH_VERIFIER;
  if (!raw || !process.send) {
    process.stderr.write('verifier-process: started without its configuration or IPC channel\n');
    process.exit(2);
  }
  const config = JSON.parse(raw) as VerifierProcessConfig;
  const verifier = new ReferenceVerifier({
    id: config.id,
    baseUrl: config.baseUrl,
    identity: config.identity,
    // A verifier that does not check in still needs a token to be constructed; it is never sent.
    checkInToken: config.credential || 'unused',
    root: rootSetFromPublicKeys(
      config.rootKeys.map((k) => b64urlDecode(k, 'root key')),
      config.rootThreshold,
    ),
  });
  const texts = new Map<number, ManifestInput>();
  let lastError = '';
  const report = (err: unknown) => {
    const message = err instanceof Error ? err.message : String(err);
    // The same failure every cycle (a mis-pinned root) is reported once.
    if (message !== lastError) send({ t: 'err', message });
    lastError = message;
  };
  let ready = false;
  let refreshing = false;
  const refresh = async () => {
    if (refreshing) return;
    refreshing = true;
    try {
      await verifier.refresh();
      lastError = '';
    } catch (err) {
      report(err);
    } finally {
      refreshing = false;
    }
    if (!ready && verifier.anchorUsable) {
      ready = true;
      send({ t: 'ready', version: verifier.anchorVersion });
    }
  };
  const checkIn = async () => {
    if (!config.credential) return;
    await verifier.checkIn().catch(report);
  };
  const refreshTimer = setInterval(() => void refresh(), config.refreshMs);
  const checkInTimer = setInterval(() => void checkIn(), config.checkInMs);
  void refresh().then(checkIn);
  let valid = 0;
  let rejected = 0;
  process.on('message', (msg: Incoming) => {
    if (msg.t === 'm') {
      texts.set(msg.id, msg.body);
    } else if (msg.t === 'v') {
      const out: [number, string, string, number][] = [];
      for (const [seq, id] of msg.b) {
        const text = texts.get(id);
        if (text === undefined) {
          out.push([seq, 'INVALID', 'other', verifier.anchorVersion]);
          continue;
        }
        const verdict = verifier.verify(text);
        if (verdict.result === 'VALID') valid++;
        else rejected++;
        out.push([seq, verdict.result, rejectionReason(verdict) ?? '', verifier.anchorVersion]);
      }
      send({ t: 'r', b: out });
    } else if (msg.t === 'stop') {
      clearInterval(refreshTimer);
      clearInterval(checkInTimer);
      void checkIn().finally(() => {
        send({ t: 'stopped', valid, rejected });
        process.disconnect();
      });
    }
  });
  process.on('disconnect', () => {
    clearInterval(refreshTimer);
    clearInterval(checkInTimer);
  });
}

main();
