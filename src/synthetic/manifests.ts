/**
 * Synthetic, valid, varied signed manifests for demos and benchmarks (`rotor manifests seed`).
 * The unsigned text is written by hand so number forms survive exactly as a real issuer might
 * write them (`1e16`, `1.0`, 20-digit ints); the interop core signs it. Deterministic for a
 * given seed, apart from manifest ids, which are UUID v7s of `now`.
 */
import { createHash } from 'node:crypto';
import {
  attestationManifestHash,
  isJsonObject,
  parseJson,
  type Signer,
  signManifest,
  uuidv7,
} from '../manifest';

export interface SyntheticOptions {
  /** issued_at / signed_at of every manifest; default: now. */
  now?: Date;
  /** Varies agents, tools and numbers; default 1. */
  seed?: number;
  /** Trust domain in agent_id and issuer SPIFFE ids. */
  trustDomain?: string;
}

const TOOLS = [
  'search.web',
  'crm.read',
  'crm.write',
  'tickets.create',
  'mail.send',
  'sql.query',
  'files.read',
];
const MODELS = ['m-small-2026-01', 'm-large-2026-03', 'm-code-2025-11'];
const ROLES = ['support', 'billing', 'triage', 'research', 'ops'];

// mulberry32: a tiny seeded generator, so a seed reproduces the same shapes.
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const sha = (text: string) => `sha256:${createHash('sha256').update(text).digest('hex')}`;
const str = JSON.stringify;

function unsignedText(i: number, rnd: () => number, opts: Required<SyntheticOptions>): string {
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rnd() * xs.length)]!;
  const role = pick(ROLES);
  const agent = `spiffe://${opts.trustDomain}/agent/${role}-${i % 997}`;
  const issued = opts.now.toISOString().slice(0, 19) + 'Z';
  const expires = new Date(opts.now.getTime() + (30 + Math.floor(rnd() * 335)) * 86_400_000)
    .toISOString()
    .slice(0, 19)
    .concat('Z');
  const tools = TOOLS.filter(() => rnd() < 0.4).map(
    (t) => `{"tool_id": ${str(t)}, "schema_hash": ${str(sha(`${t}:schema:${i % 13}`))}}`,
  );
  const members = [
    `"@context": "https://agentmanifest.org/v0.1/context.json"`,
    `"@type": "AgentManifest"`,
    `"manifest_id": ${str(uuidv7(opts.now))}`,
    `"agent_id": ${str(agent)}`,
    `"version": "0.1"`,
    `"issued_at": ${str(issued)}`,
    `"expires_at": ${str(expires)}`,
    `"issuer": ${str(`spiffe://${opts.trustDomain}/signing-authority`)}`,
    `"crypto_profile": "standard"`,
    `"artifacts": {"system_prompt": {"hash": ${str(sha(`prompt ${role} ${i}`))}}, ` +
      `"model_identity": {"model_hash": null, "version": ${str(pick(MODELS))}, "deployment_type": "api"}, ` +
      `"tool_manifest": {"catalog_hash": ${str(sha(tools.join()))}, "tools": [${tools.join(', ')}]}}`,
    `"delegation_chain": []`,
  ];
  // Number forms a lossy parser would rewrite: floats written as 1.0 and 1e16, ints past 2^64.
  const r = rnd();
  if (r < 0.25) {
    members.push(
      `"operational_lifecycle": {"temperature": ${(rnd() * 2).toFixed(2)}, "budget_ratio": 1.0, "max_tokens": 1e16}`,
    );
  } else if (r < 0.5) {
    members.push(
      `"data_scope": {"ttl_days": ${1 + (i % 365)}, "row_limit": 123456789012345678${String(i % 100).padStart(2, '0')}}`,
    );
  } else if (r < 0.6) {
    members.push(
      `"hitl_record": {"required": true, "escalation_policy": {"timeout_action": "deny"}, "approvals": []}`,
    );
  }
  if (rnd() < 0.2) members.push(`"intent": {"statement": "Caf\\u00e9 ops for ${role}", "score": 0.95}`);
  return `{${members.join(', ')}}`;
}

export async function* syntheticManifests(
  count: number,
  signer: Signer,
  options: SyntheticOptions = {},
): AsyncGenerator<string> {
  const opts: Required<SyntheticOptions> = {
    now: options.now ?? new Date(),
    seed: options.seed ?? 1,
    trustDomain: options.trustDomain ?? 'trust.example',
  };
  const rnd = random(opts.seed);
  for (let i = 0; i < count; i++) {
    const withAttestation = rnd() < 0.15;
    const { text } = await signManifest(unsignedText(i, rnd, opts), signer, { signedAt: opts.now });
    if (!withAttestation) {
      yield text;
      continue;
    }
    // The attestation sits outside the signature and binds the signed document's canonical hash.
    const root = parseJson(text);
    if (!isJsonObject(root)) throw new Error('signManifest returned a non-object');
    const attestation =
      `{"platform": "sev-snp", "manifest_hash_in_report": ${str(attestationManifestHash(root))}, ` +
      `"report": ${str(sha(`report ${i}`))}, "audit_key_sealed": true}`;
    yield `${text.slice(0, text.lastIndexOf('}'))}, "attestation": ${attestation}}`;
  }
}
