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
const hex = (text: string) => createHash('sha256').update(text).digest('hex');
const str = JSON.stringify;
const utcSeconds = (ms: number) => `${new Date(ms).toISOString().slice(0, 19)}Z`;
const DAY = 86_400_000;

/**
 * One manifest's unsigned text. Every manifest is schema-valid under the spec (rotor's schema,
 * src/manifest/schema.ts, which the SDK's verdict is never looser than); the variety is in which
 * optional blocks appear and in the number forms a lossy parser would rewrite (integers past
 * 2^53 in document and entry counts, 20-digit ints in the transparency log entry).
 */
function unsignedText(i: number, rnd: () => number, opts: Required<SyntheticOptions>): string {
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rnd() * xs.length)]!;
  const role = pick(ROLES);
  const td = opts.trustDomain;
  const agent = `spiffe://${td}/agent/${role}-${i % 997}`;
  const now = opts.now.getTime();
  const issued = utcSeconds(now);
  // 30 to 364 days: inside the spec's 1-hour to 365-day window.
  const expires = utcSeconds(now + (30 + Math.floor(rnd() * 335)) * DAY);
  const boundAt = utcSeconds(now - (1 + Math.floor(rnd() * 20)) * DAY);
  const semver = () => `${1 + Math.floor(rnd() * 3)}.${Math.floor(rnd() * 10)}.${Math.floor(rnd() * 20)}`;

  const toolIds = TOOLS.filter(() => rnd() < 0.4);
  const tools = toolIds.map(
    (t) =>
      `{"tool_id": ${str(`com.example.${t}`)}, "tool_name": ${str(t.replace('.', '_'))}, ` +
      `"endpoint_id": ${str(`spiffe://${td}/mcp/${t.split('.')[0]}`)}, ` +
      `"schema_hash": ${str(sha(`${t}:schema:${i % 13}`))}, "description_hash": ${str(sha(`${t}:desc`))}, ` +
      `"version": ${str(semver())}, "egress_destinations": ${t === 'search.web' ? '["api.search.example"]' : '[]'}}`,
  );
  const language = pick(['cedar', 'rego', 'yaml-agt'] as const);
  const local = rnd() < 0.2;
  const artifacts = [
    `"system_prompt": {"hash": ${str(sha(`prompt ${role} ${i}`))}, "hash_algorithm": "SHA-256", ` +
      `"version": ${str(`2026.${1 + (i % 12)}.${i % 7}`)}, "classification": ${str(pick(['internal', 'confidential', 'restricted']))}, ` +
      `"language": "en", "bound_at": ${str(boundAt)}}`,
    `"policy_bundle": {"hash": ${str(sha(`policy ${role}`))}, "policy_language": ${str(language)}, ` +
      `"version": ${str(semver())}, "enforcement_mode": ${str(pick(['enforce', 'enforce', 'audit-only']))}, ` +
      `"scope": [${str(`${role}:tickets:read`)}]${language === 'yaml-agt' ? ', "agt_version": "1.4.0"' : ''}, "bound_at": ${str(boundAt)}}`,
    `"tool_manifest": {"catalog_hash": ${str(sha(toolIds.join()))}, "tools": [${tools.join(', ')}], ` +
      `"allow_dynamic_registration": false, "rug_pull_policy": ${str(pick(['deny-and-alert', 'deny-and-hold', 'require-reapproval']))}, ` +
      `"bound_at": ${str(boundAt)}}`,
    local
      ? `"model_identity": {"provider": "example-labs", "model_id": ${str(pick(MODELS))}, "version": "2026-03-01", ` +
        `"quantization": "int8", "deployment_type": "local", "model_hash": ${str(sha(`weights ${i % 5}`))}, ` +
        `"model_attestation_type": "hash-bound", "bound_at": ${str(boundAt)}}`
      : `"model_identity": {"provider": "example-ai", "model_id": ${str(pick(MODELS))}, "version": "2026-01", ` +
        `"deployment_type": "api", "model_hash": null, "model_attestation_type": "provider-asserted", "bound_at": ${str(boundAt)}}`,
  ];
  if (rnd() < 0.3) {
    // A document count past 2^53: JSON.parse would round it, and the signature with it.
    artifacts.push(
      `"rag_corpus": {"corpus_id": ${str(`kb-${role}`)}, "merkle_root": ${str(sha(`corpus ${role}`))}, ` +
        `"document_count": ${9007199254740993n + BigInt(i % 1000)}, "ingestion_policy_hash": ${str(sha('ingest'))}, ` +
        `"vector_store": "pgvector/0.7.0", "embedding_model": "embed-3", "last_updated": ${str(boundAt)}, ` +
        `"poisoning_scan": {"scanner_version": "corpus-scan/1.4.2", "scanned_at": ${str(boundAt)}, "result": "clean"}, ` +
        `"bound_at": ${str(boundAt)}}`,
    );
  }
  if (rnd() < 0.25) {
    artifacts.push(
      `"memory_baseline": {"baseline_id": ${str(uuidv7(new Date(now - DAY)))}, "snapshot_hash": ${str(sha(`mem ${i}`))}, ` +
        `"memory_type": "persistent", "store": "redis/7.2", "approved_at": ${str(boundAt)}, "ttl_seconds": 86400, ` +
        `"drift_policy": "alert-on-drift", "bound_at": ${str(boundAt)}}`,
    );
  }
  const members = [
    `"@context": "https://agentmanifest.agentrust.io/v0.1/context.json"`,
    `"@type": "AgentManifest"`,
    `"manifest_id": ${str(uuidv7(opts.now))}`,
    `"agent_id": ${str(agent)}`,
    `"version": "0.1"`,
    `"issued_at": ${str(issued)}`,
    `"expires_at": ${str(expires)}`,
    `"issuer": ${str(`spiffe://${td}/signing-authority`)}`,
    `"crypto_profile": "standard"`,
    `"artifacts": {${artifacts.join(', ')}}`,
  ];
  if (rnd() < 0.15) {
    members.push(
      `"delegation_chain": [{"hop": 0, "principal_type": "human", "principal_id": ${str(`mailto:${role}-lead@${td}`)}, ` +
        `"delegated_at": ${str(boundAt)}, "scope_grant": {"tools": [${toolIds.map((t) => str(`com.example.${t}`)).join(', ')}], ` +
        `"data_classifications": ["internal"], "max_delegation_depth": 1}, "delegation_signature": ${str(hex(`delegation ${i}`))}}]`,
    );
  }
  const r = rnd();
  if (r < 0.25) {
    members.push(
      `"operational_lifecycle": {"expected_lifetime_days": ${90 + (i % 640)}, "planned_maintenance_schedule": "0 3 * * SUN", ` +
        `"reissuance_triggers": ["model_version_change", "policy_major_version"]}`,
    );
  } else if (r < 0.5) {
    members.push(
      `"data_scope": {"personal_data_categories": ["contact", "support_history"], "legal_basis": ["art6-1-b"], ` +
        `"automated_decision_making": ${i % 2 === 0 ? 'true' : 'false'}, "dpia_reference": "https://dpia.example/${role}"}`,
    );
  } else if (r < 0.6) {
    members.push(
      `"hitl_record": {"required": true, "escalation_policy": {"timeout_action": "deny"}, "approvals": []}`,
    );
  }
  if (rnd() < 0.2)
    members.push(
      `"log_retention": {"minimum_retention_days": 180, "retention_enforced_by": "s3-object-lock"}`,
    );
  if (rnd() < 0.2) members.push(`"intent": {"statement": "Caf\\u00e9 ops for ${role}"}`);
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
    const logged = rnd() < 0.3;
    let { text } = await signManifest(unsignedText(i, rnd, opts), signer, { signedAt: opts.now });
    // Blocks appended after signing, outside the signature (spec 3.3 and 3.6): the attestation
    // binds the signed document's canonical hash; the log entry is what the log returned.
    const appended: string[] = [];
    if (withAttestation) {
      const root = parseJson(text);
      if (!isJsonObject(root)) throw new Error('signManifest returned a non-object');
      appended.push(
        `"attestation": {"platform": "amd-sev-snp", "tee_version": "1.55.21", ` +
          `"manifest_hash_in_report": ${str(attestationManifestHash(root))}, ` +
          `"report_uri": ${str(`https://attest.example/reports/${i}`)}, "audit_key_sealed": true}`,
      );
    }
    if (logged) {
      appended.push(
        `"transparency_log_entry": {"log_id": ${str(hex('log key'))}, "log_index": ${18446744073709551616n + BigInt(i)}, ` +
          `"entry_uuid": ${str(hex(`entry ${i} ${opts.seed}`))}, "integrated_time": ${Math.floor(opts.now.getTime() / 1000)}, ` +
          `"inclusion_proof": {"checkpoint": "rekor.example - 1\\n42\\n", "hashes": [${str(hex(`h ${i}`))}], "tree_size": ${1000000 + i}}}`,
      );
    }
    if (appended.length > 0) text = `${text.slice(0, text.lastIndexOf('}'))}, ${appended.join(', ')}}`;
    yield text;
  }
}
