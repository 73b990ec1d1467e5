/**
 * CPU per manifest of the re-sign step's CPU half (`signRows`, src/activities/reissue-batch.ts:
 * parse, `decideReissue`'s strict verify, schema and window checks, the v0.1 -> v0.2 conversion
 * and the COSE_Sign1 twin), on one thread, beside raw node:crypto verify-then-sign of the same
 * texts in the same process. Rounds of 500-row batches, as the rotation signs them; the figure is
 * this process's CPU time divided by the manifests, so it holds whatever else the machine runs
 * (on an idle core; a loaded machine slows the core itself a little).
 *
 *   node --import tsx bench/sign-rows.ts [--manifests 6000] [--rounds 4] [--as 0.2|same] [--json]
 */
import { sign, verify } from 'node:crypto';
import { type BatchFacts, type BatchRow, signRows } from '../src/activities/reissue-batch';
import { privateKeyFromSeed, publicKeyObject, type ReissueAs, softwareSigner } from '../src/manifest/index';
import { syntheticManifests } from '../src/synthetic/manifests';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? fallback : process.argv[i + 1]!;
}
const count = Number(arg('manifests', '6000'));
const rounds = Number(arg('rounds', '4'));
const reissueAs = arg('as', '0.2') as ReissueAs;

const now = new Date();
const oldSeed = new Uint8Array(32).fill(7);
const oldSigner = softwareSigner(oldSeed);
const newSigner = softwareSigner(new Uint8Array(32).fill(8));
const rows: BatchRow[] = [];
// Issued a minute before the decision's clock (a manifest issued later is declined).
for await (const text of syntheticManifests(count, oldSigner, {
  seed: 5,
  now: new Date(now.getTime() - 60_000),
})) {
  rows.push({
    manifestId: JSON.parse(text).manifest_id as string,
    text,
    envelope: null,
    keyId: oldSigner.keyId,
    storedAt: now,
  });
}
const facts: BatchFacts = {
  registry: [{ keyId: oldSigner.keyId, identity: 'bench', publicKey: oldSigner.publicKey }],
  identity: 'bench',
  fromKeyId: oldSigner.keyId,
  now,
  status: 'active',
  revokedEarlier: [],
  reissueAs,
};

const cpuMicros = () => {
  const u = process.cpuUsage();
  return u.user + u.system;
};

// Raw: verify a signature over each text, then sign it, with OpenSSL handles made once.
const privateKey = privateKeyFromSeed(oldSeed);
const publicKey = publicKeyObject(oldSigner.publicKey);
const texts = rows.map((r) => Buffer.from(r.text!));
const signatures = texts.map((t) => sign(null, t, privateKey));
let t0 = cpuMicros();
for (let i = 0; i < texts.length; i++) {
  if (!verify(null, texts[i]!, publicKey, signatures[i]!)) throw new Error('raw verify failed');
  sign(null, texts[i]!, privateKey);
}
const rawMicros = (cpuMicros() - t0) / texts.length;

const perRound: number[] = [];
for (let r = 0; r < rounds; r++) {
  t0 = cpuMicros();
  let twins = 0;
  for (let i = 0; i < rows.length; i += 500) {
    const signed = await signRows(rows.slice(i, i + 500), facts, newSigner);
    twins += signed.twins.length;
  }
  if (twins !== rows.length) throw new Error(`${rows.length - twins} manifests declined`);
  perRound.push((cpuMicros() - t0) / rows.length);
}
const best = Math.min(...perRound);
const row = {
  manifests: count,
  reissueAs,
  rawVerifySignMicros: Number(rawMicros.toFixed(1)),
  signRowsMicrosPerRound: perRound.map((m) => Number(m.toFixed(1))),
  signRowsOfRaw: Number((best / rawMicros).toFixed(2)),
};
if (process.argv.includes('--json')) console.log(JSON.stringify(row));
else console.error(row);
