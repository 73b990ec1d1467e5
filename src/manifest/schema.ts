/**
 * The spec's schema for v0.1 manifests (docs/upstream/agent-manifest-spec-v0.2.md §3.1 to §3.9,
 * §8.1, §9.3, §9.4), applied the way the reference SDK's model does it: every object the spec
 * defines has an exhaustive member set (an unknown member is an error at every level), required
 * claims, enums, formats (UUID v7, `sha256:`/`shake256:` hashes, SPIFFE ids, timestamps) and the
 * cross-field rules (validity window, model_hash, memory type, delegation depth, profile).
 *
 * Where the SDK is lax and the spec is not (lowercase UUIDs, timestamps with an explicit offset,
 * integers written as integers, JSON booleans only, required members present), rotor follows the
 * spec: its verdict may be stricter than the SDK's, never looser (DOMAIN fact 17). Pure: no I/O,
 * no clock (the time-dependent checks live in verify.ts and reissue-policy.ts).
 */
import { formatPath } from './errors';
import { isJsonObject, JsonNumber, type JsonObject, type JsonValue } from './json';
import { parseTimestamp } from './timestamps';

/** Every rule has a name; a problem names the rule it broke, so tests and messages can too. */
export type SchemaRule =
  | 'not-an-object'
  | 'unknown-member'
  | 'required'
  | 'type'
  | 'enum'
  | 'uuid-v7'
  | 'hash'
  | 'timestamp'
  | 'spiffe-id'
  | 'range'
  | 'non-empty'
  | 'validity-window'
  | 'model-hash'
  | 'memory-type'
  | 'agt-version'
  | 'trace-window'
  | 'approver-identity'
  | 'signature-algorithm'
  | 'delegation-chain'
  | 'profile'
  | 'egress-none'
  | 'assessed-at';

export interface SchemaProblem {
  /** Field path as messages write it: `artifacts.system_prompt.hash`, `delegation_chain[0].hop`. */
  path: string;
  rule: SchemaRule;
  message: string;
}

/** The 1 hour to 365 days an `expires_at` may lie after `issued_at` (spec §3.1 "expires_at"). */
export const MIN_VALIDITY_MS = 3600 * 1000;
export const MAX_VALIDITY_MS = 365 * 86_400 * 1000;

// RFC 9562 §5.7, written the spec's way: 8-4-4-4-12 lowercase hex, version 7, variant 10 (§3.1).
const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const HASH_VALUE = /^(sha256|shake256):[0-9a-f]{64}$/;
// §3.1: trust domain lowercase [a-z0-9._-]; path segments [a-zA-Z0-9._-]; at most 2048 bytes.
const SPIFFE_ID = /^spiffe:\/\/[a-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/;

export function isUuidV7(value: string): boolean {
  return UUID_V7.test(value);
}

type Scalar =
  | 'string'
  | 'non-empty-string'
  | 'boolean'
  | 'timestamp'
  | 'hash'
  | 'uuid-v7'
  | 'spiffe-id'
  | 'any-object';

type Spec =
  | Scalar
  | { int: { min?: number; max?: number } }
  | { enum: readonly (string | number)[] }
  | { array: Spec; minItems?: number }
  | ObjectSpec;

interface ObjectSpec {
  object: Record<string, Member>;
  /** Cross-field rules, run once every member has the right shape. */
  check?: (obj: JsonObject, path: Path, out: Problems) => void;
}

interface Member {
  spec: Spec;
  required?: boolean;
  /** An explicit null is read as absent (the SDK's Optional members); required ones never are. */
  nullable?: boolean;
}

type Path = (string | number)[];

class Problems {
  readonly list: SchemaProblem[] = [];
  add(path: Path, rule: SchemaRule, message: string): void {
    this.list.push({ path: formatPath(path), rule, message });
  }
}

const req = (spec: Spec): Member => ({ spec, required: true });
const opt = (spec: Spec): Member => ({ spec, nullable: true });
const int = (min?: number, max?: number): Spec => ({
  int: { ...(min === undefined ? {} : { min }), ...(max === undefined ? {} : { max }) },
});
const oneOf = (...values: (string | number)[]): Spec => ({ enum: values });
const arrayOf = (spec: Spec, minItems?: number): Spec => ({
  array: spec,
  ...(minItems === undefined ? {} : { minItems }),
});

const CLASSIFICATION = oneOf('public', 'internal', 'confidential', 'restricted');
const ARTIFACT_NAMES = [
  'system_prompt',
  'policy_bundle',
  'tool_manifest',
  'model_identity',
  'rag_corpus',
  'memory_baseline',
  'decision_trace',
  'delegation_chain',
  'supply_chain',
  'hitl_record',
] as const;

// §3.2.1.1
const ASSURANCE_TEST: ObjectSpec = {
  object: {
    suite_id: req('non-empty-string'),
    suite_version: req('non-empty-string'),
    harness_version: req('non-empty-string'),
    result: req(oneOf('passed', 'flagged', 'not-assessed')),
    assessed_at: opt('timestamp'),
    scenario_count: opt(int(1)),
    evidence_uri: opt('string'),
    evidence_digest: opt('hash'),
    assessed_by: opt('spiffe-id'),
  },
  check(obj, path, out) {
    const result = obj.get('result');
    if ((result === 'passed' || result === 'flagged') && absent(obj, 'assessed_at')) {
      out.add([...path, 'assessed_at'], 'assessed-at', `is required when result is "${result}"`);
    }
  },
};

// §3.2.1
const SYSTEM_PROMPT: ObjectSpec = {
  object: {
    hash: req('hash'),
    hash_algorithm: opt(oneOf('SHA-256', 'SHAKE-256')),
    version: req('non-empty-string'),
    classification: req(CLASSIFICATION),
    language: opt('string'),
    safety_level: opt('string'),
    assurance_test: opt(ASSURANCE_TEST),
    bound_at: req('timestamp'),
  },
};

// §3.2.2
const POLICY_BUNDLE: ObjectSpec = {
  object: {
    hash: req('hash'),
    policy_language: req(oneOf('cedar', 'rego', 'yaml-agt', 'composite')),
    version: req('non-empty-string'),
    enforcement_mode: req(oneOf('enforce', 'advisory', 'audit-only')),
    scope: opt(arrayOf('string')),
    agt_version: opt('non-empty-string'),
    bound_at: req('timestamp'),
  },
  check(obj, path, out) {
    const lang = obj.get('policy_language');
    if ((lang === 'yaml-agt' || lang === 'composite') && absent(obj, 'agt_version')) {
      out.add([...path, 'agt_version'], 'agt-version', `is required when policy_language is "${lang}"`);
    }
  },
};

// §3.2.3
const TOOL_ENTRY: ObjectSpec = {
  object: {
    tool_id: req('non-empty-string'),
    tool_name: req('non-empty-string'),
    endpoint_id: req('spiffe-id'),
    schema_hash: req('hash'),
    description_hash: req('hash'),
    version: req('non-empty-string'),
    permission_scope: opt('string'),
    egress_destinations: opt(arrayOf('non-empty-string')),
  },
  check(obj, path, out) {
    const egress = obj.get('egress_destinations');
    if (Array.isArray(egress) && egress.includes('none')) {
      out.add(
        [...path, 'egress_destinations'],
        'egress-none',
        '"none" must not appear; an empty array means no egress',
      );
    }
  },
};

const TOOL_MANIFEST: ObjectSpec = {
  object: {
    catalog_hash: req('hash'),
    tools: req(arrayOf(TOOL_ENTRY)),
    allow_dynamic_registration: opt('boolean'),
    rug_pull_policy: req(oneOf('deny-and-alert', 'deny-and-hold', 'require-reapproval')),
    bound_at: req('timestamp'),
  },
};

// §3.2.4
const MODEL_IDENTITY: ObjectSpec = {
  object: {
    provider: req('non-empty-string'),
    model_id: req('non-empty-string'),
    version: req('non-empty-string'),
    capability_level: opt('string'),
    safety_alignment_version: opt('string'),
    quantization: opt('non-empty-string'),
    deployment_type: req(oneOf('api', 'local', 'confidential-inference', 'third-party-api')),
    model_hash: opt('hash'),
    model_attestation_type: req(oneOf('hash-bound', 'provider-asserted')),
    bound_at: req('timestamp'),
  },
  check(obj, path, out) {
    const deployment = obj.get('deployment_type');
    const hashless = deployment === 'api' || deployment === 'third-party-api';
    const hasHash = !absent(obj, 'model_hash');
    const attestation = obj.get('model_attestation_type');
    if (hashless && hasHash) {
      out.add([...path, 'model_hash'], 'model-hash', `must be null when deployment_type is "${deployment}"`);
    } else if (!hashless && !hasHash) {
      out.add([...path, 'model_hash'], 'model-hash', `is required when deployment_type is "${deployment}"`);
    }
    const wanted = hashless ? 'provider-asserted' : 'hash-bound';
    if (attestation !== undefined && attestation !== wanted) {
      out.add(
        [...path, 'model_attestation_type'],
        'model-hash',
        `must be "${wanted}" when deployment_type is "${deployment}"`,
      );
    }
  },
};

// §3.2.5
const RAG_CORPUS: ObjectSpec = {
  object: {
    corpus_id: req('non-empty-string'),
    merkle_root: req('hash'),
    document_count: req(int(0)),
    ingestion_policy_hash: req('hash'),
    vector_store: req('non-empty-string'),
    embedding_model: req('non-empty-string'),
    last_updated: req('timestamp'),
    poisoning_scan: req({
      object: {
        scanner_version: opt('non-empty-string'),
        scanned_at: opt('timestamp'),
        result: req(oneOf('clean', 'flagged', 'not-scanned')),
      },
    }),
    bound_at: req('timestamp'),
  },
};

// §3.2.6
const MEMORY_BASELINE: ObjectSpec = {
  object: {
    baseline_id: req('uuid-v7'),
    snapshot_hash: opt('hash'),
    memory_type: req(oneOf('none', 'session', 'persistent', 'shared')),
    store: req('non-empty-string'),
    approved_at: req('timestamp'),
    ttl_seconds: opt(int(3600, 7_776_000)),
    drift_policy: req(oneOf('deny-on-drift', 'alert-on-drift', 'log-only')),
    shared_memory_owner: opt('uuid-v7'),
    check_interval_seconds: opt(int(1)),
    bound_at: req('timestamp'),
  },
  check(obj, path, out) {
    const type = obj.get('memory_type');
    const at = (m: string) => [...path, m];
    if (type === 'none') {
      if (!absent(obj, 'snapshot_hash'))
        out.add(at('snapshot_hash'), 'memory-type', 'must be null when memory_type is "none"');
    } else if (absent(obj, 'snapshot_hash')) {
      out.add(at('snapshot_hash'), 'memory-type', `is required when memory_type is "${type}"`);
    }
    if ((type === 'persistent' || type === 'shared') && absent(obj, 'ttl_seconds'))
      out.add(at('ttl_seconds'), 'memory-type', `is required when memory_type is "${type}"`);
    if (type === 'shared' && absent(obj, 'shared_memory_owner'))
      out.add(at('shared_memory_owner'), 'memory-type', 'is required when memory_type is "shared"');
    if (type !== 'shared' && !absent(obj, 'shared_memory_owner'))
      out.add(at('shared_memory_owner'), 'memory-type', 'is only allowed when memory_type is "shared"');
  },
};

// §3.2.7
const DECISION_TRACE: ObjectSpec = {
  object: {
    trace_type: req(oneOf('hash-chained', 'merkle-log')),
    audit_chain_root: req('hash'),
    audit_chain_uri: req('non-empty-string'),
    signing_key_id: req('non-empty-string'),
    audit_key_sealed: req('boolean'),
    first_entry_at: req('timestamp'),
    last_entry_at: req('timestamp'),
    entry_count: opt(int(0)),
    bound_at: req('timestamp'),
  },
  check(obj, path, out) {
    const first = timestampMs(obj.get('first_entry_at'));
    const last = timestampMs(obj.get('last_entry_at'));
    if (first !== null && last !== null && first > last)
      out.add([...path, 'first_entry_at'], 'trace-window', 'must not be after last_entry_at');
  },
};

// §3.2.8
const SBOM: ObjectSpec = {
  object: {
    format: req(oneOf('cyclonedx', 'spdx')),
    schema_version: req('non-empty-string'),
    document_id: req('non-empty-string'),
    sbom_hash: req('hash'),
    sbom_uri: req('non-empty-string'),
  },
};

const SLSA_LEVEL = oneOf(1, 2, 3, 4);

const SUPPLY_CHAIN: ObjectSpec = {
  object: {
    container_image_digest: req('hash'),
    base_image_digest: opt('hash'),
    slsa_provenance: opt({
      object: {
        builder_id: req('non-empty-string'),
        subject_digest: req('hash'),
        provenance_uri: req('non-empty-string'),
        rekor_entry_id: opt('string'),
        declared_level: opt(SLSA_LEVEL),
      },
    }),
    sbom: opt(SBOM),
    mcp_servers: opt(
      arrayOf({
        object: {
          server_id: req('spiffe-id'),
          image_digest: req('hash'),
          slsa_level: req(SLSA_LEVEL),
          phase2_attested: req('boolean'),
          sbom: opt(SBOM),
        },
      }),
    ),
    bound_at: req('timestamp'),
  },
};

const ARTIFACTS: ObjectSpec = {
  object: {
    system_prompt: opt(SYSTEM_PROMPT),
    policy_bundle: opt(POLICY_BUNDLE),
    tool_manifest: opt(TOOL_MANIFEST),
    model_identity: opt(MODEL_IDENTITY),
    rag_corpus: opt(RAG_CORPUS),
    memory_baseline: opt(MEMORY_BASELINE),
    decision_trace: opt(DECISION_TRACE),
    supply_chain: opt(SUPPLY_CHAIN),
  },
};

// §3.4
const DELEGATION_HOP: ObjectSpec = {
  object: {
    hop: req(int(0)),
    principal_type: req(oneOf('human', 'system', 'agent')),
    principal_id: req('non-empty-string'),
    delegated_at: req('timestamp'),
    scope_grant: req({
      object: {
        tools: opt(arrayOf('string')),
        data_classifications: opt(arrayOf(CLASSIFICATION)),
        max_delegation_depth: opt(int(0)),
        ttl_seconds: opt(int(1)),
        constraints: opt(arrayOf('string')),
      },
    }),
    delegation_signature: req('non-empty-string'),
    principal_manifest_id: opt('uuid-v7'),
    principal_attestation_hash: opt('hash'),
  },
};

// §3.5
const HITL_APPROVAL: ObjectSpec = {
  object: {
    approval_id: req('uuid-v7'),
    approver_id: req('non-empty-string'),
    approver_identity_type: req(oneOf('oidc', 'email', 'did')),
    approver_oidc_issuer: opt('non-empty-string'),
    approver_role: req('non-empty-string'),
    approved_at: req('timestamp'),
    approved_scope: req({
      object: {
        artifacts: req(arrayOf('string')),
        risk_tier: req(oneOf('low', 'medium', 'high', 'critical')),
        approval_duration_seconds: req(int(1)),
        conditions: opt(arrayOf('string')),
      },
    }),
    approval_signature: req('non-empty-string'),
    approval_method: req(oneOf('hardware-key', 'software-key', 'mfa-backed')),
    evidence_uri: req('non-empty-string'),
  },
  check(obj, path, out) {
    const approver = obj.get('approver_id');
    if (typeof approver === 'string' && approver.startsWith('spiffe://'))
      out.add([...path, 'approver_id'], 'approver-identity', 'must identify a person, not a SPIFFE workload');
    if (obj.get('approver_identity_type') === 'oidc' && absent(obj, 'approver_oidc_issuer'))
      out.add(
        [...path, 'approver_oidc_issuer'],
        'approver-identity',
        'is required when approver_identity_type is "oidc"',
      );
  },
};

const HITL_RECORD: ObjectSpec = {
  object: {
    required: req('boolean'),
    approvals: opt(arrayOf(HITL_APPROVAL)),
    escalation_policy: opt({
      object: {
        trigger: opt('string'),
        escalation_target: opt('spiffe-id'),
        timeout_action: req(oneOf('deny', 'suspend', 'alert')),
      },
    }),
    hitl_runtime: opt({
      object: {
        interrupt_endpoint: opt('non-empty-string'),
        override_mechanism: opt(oneOf('kill-signal', 'suspend-and-hold', 'require-confirmation')),
        monitoring_endpoint: opt('non-empty-string'),
        automation_bias_disclosure: opt('non-empty-string'),
      },
    }),
  },
};

// §3.6 "Transparency log entry format"
const TRANSPARENCY_LOG_ENTRY: ObjectSpec = {
  object: {
    log_id: req('non-empty-string'),
    log_index: req(int(0)),
    entry_uuid: req('non-empty-string'),
    integrated_time: req(int(0)),
    inclusion_proof: req({
      object: {
        checkpoint: req('non-empty-string'),
        hashes: req(arrayOf('string')),
        tree_size: req(int(0)),
      },
    }),
  },
};

// §3.6
const SIGNATURE: ObjectSpec = {
  object: {
    algorithm: req(oneOf('Ed25519', 'ML-DSA-65', 'hybrid-Ed25519-ML-DSA-65')),
    key_id: req('non-empty-string'),
    key_type: req(oneOf('software', 'hsm', 'tee-sealed')),
    signed_at: req('timestamp'),
    signed_fields: opt(arrayOf('string')),
    signature_value: opt('string'),
    classical_signature: opt('string'),
    pq_signature: opt('string'),
  },
  check(obj, path, out) {
    const hybrid = obj.get('algorithm') === 'hybrid-Ed25519-ML-DSA-65';
    const has = (m: string) => {
      const v = obj.get(m);
      return typeof v === 'string' && v !== '';
    };
    if (hybrid && !(has('classical_signature') && has('pq_signature')))
      out.add(path, 'signature-algorithm', 'a hybrid signature needs classical_signature and pq_signature');
    if (!hybrid && !has('signature_value'))
      out.add([...path, 'signature_value'], 'signature-algorithm', 'is required for this algorithm');
    if (!hybrid && (has('classical_signature') || has('pq_signature')))
      out.add(
        path,
        'signature-algorithm',
        'classical_signature and pq_signature belong to hybrid signatures',
      );
  },
};

/** The v0.1 manifest (§3.1 top-level schema and cardinality table). */
const MANIFEST_V01: ObjectSpec = {
  object: {
    '@context': opt('non-empty-string'),
    '@type': opt('non-empty-string'),
    manifest_id: req('uuid-v7'),
    previous_manifest_id: opt('uuid-v7'),
    agent_id: req('spiffe-id'),
    agent_instance_id: opt('uuid-v7'),
    version: req('non-empty-string'),
    min_verifier_version: opt('non-empty-string'),
    issued_at: req('timestamp'),
    expires_at: req('timestamp'),
    issuer: req('spiffe-id'),
    crypto_profile: req(oneOf('standard', 'post-quantum')),
    profile: opt(oneOf('composition-only')),
    unbound_artifacts: opt(arrayOf(oneOf(...ARTIFACT_NAMES))),
    // §3.1.2: exactly two members; an unknown format is refused.
    source_bundle: opt({ object: { format: req(oneOf('agent-plugins-1.0.0')), digest: req('hash') } }),
    artifacts: req(ARTIFACTS),
    // Appended by hardware after signing and never signed; its content is the platform's (§3.3),
    // and rotor drops it on re-issue (AM-VEC-021), so only its being an object is checked.
    attestation: opt('any-object'),
    delegation_chain: opt(arrayOf(DELEGATION_HOP)),
    hitl_record: opt(HITL_RECORD),
    prior_transparency_log_entry: opt(TRANSPARENCY_LOG_ENTRY),
    // §8.1
    log_retention: opt({
      object: {
        minimum_retention_days: req(int(1)),
        regulatory_retention_override: opt(int(1)),
        retention_enforced_by: req('non-empty-string'),
      },
    }),
    // §9.3
    data_scope: opt({
      object: {
        personal_data_categories: opt(arrayOf('string')),
        legal_basis: opt(arrayOf('string')),
        automated_decision_making: req('boolean'),
        dpia_reference: opt('string'),
      },
    }),
    // §9.4
    operational_lifecycle: opt({
      object: {
        expected_lifetime_days: req(int(1)),
        planned_maintenance_schedule: opt('string'),
        update_policy: opt('string'),
        reissuance_triggers: opt(arrayOf('string')),
      },
    }),
    // §3.9
    intent: opt({ object: { statement: req('non-empty-string') } }),
    signature: opt(SIGNATURE),
    transparency_log_entry: opt(TRANSPARENCY_LOG_ENTRY),
  },
  check: manifestRules,
};

function manifestRules(m: JsonObject, _path: Path, out: Problems): void {
  // §3.1 "expires_at": at least 1 hour and at most 365 days after issued_at.
  const issued = timestampMs(m.get('issued_at'));
  const expires = timestampMs(m.get('expires_at'));
  if (issued !== null && expires !== null) {
    const span = expires - issued;
    if (span < MIN_VALIDITY_MS)
      out.add(['expires_at'], 'validity-window', 'must be at least 1 hour after issued_at');
    else if (span > MAX_VALIDITY_MS)
      out.add(['expires_at'], 'validity-window', 'must not be more than 365 days after issued_at');
  }

  // §3.1 cardinality: an empty delegation_chain is invalid (omit it); §3.4.1 depth and hop order.
  const chain = m.get('delegation_chain');
  if (Array.isArray(chain)) {
    if (chain.length === 0) {
      out.add(
        ['delegation_chain'],
        'delegation-chain',
        'must not be empty; omit it when there is no delegation',
      );
    } else {
      const root = chain[0];
      const grant = isJsonObject(root) ? root.get('scope_grant') : undefined;
      const maxDepth = isJsonObject(grant) ? grant.get('max_delegation_depth') : undefined;
      const limit = maxDepth instanceof JsonNumber ? maxDepth.toNumber() : 3;
      if (chain.length - 1 > limit)
        out.add(
          ['delegation_chain'],
          'delegation-chain',
          `depth ${chain.length - 1} exceeds the root's max_delegation_depth ${limit}`,
        );
      chain.forEach((hop, i) => {
        const n = isJsonObject(hop) ? hop.get('hop') : undefined;
        if (n instanceof JsonNumber && n.text !== String(i))
          out.add(['delegation_chain', i, 'hop'], 'delegation-chain', `is ${n.text}, expected ${i}`);
      });
    }
  }

  // §3.1.1 composition-only profile; without a profile, the full-binding artifacts.
  const artifacts = m.get('artifacts');
  const bound = new Set<string>();
  if (isJsonObject(artifacts)) for (const [k, v] of artifacts) if (v !== null) bound.add(k);
  if (!absent(m, 'delegation_chain')) bound.add('delegation_chain');
  if (!absent(m, 'hitl_record')) bound.add('hitl_record');
  const unbound = m.get('unbound_artifacts');
  if (absent(m, 'profile')) {
    if (!absent(m, 'unbound_artifacts'))
      out.add(['unbound_artifacts'], 'profile', 'is only allowed when profile is "composition-only"');
    const missing = ['system_prompt', 'policy_bundle', 'model_identity'].filter((a) => !bound.has(a));
    if (missing.length > 0)
      out.add(['artifacts'], 'profile', `a full-binding manifest must bind ${missing.join(', ')}`);
    return;
  }
  const declared = Array.isArray(unbound) ? unbound.filter((v): v is string => typeof v === 'string') : [];
  if (declared.length === 0) {
    out.add(['unbound_artifacts'], 'profile', 'must be present and non-empty for profile "composition-only"');
    return;
  }
  if (new Set(declared).size !== declared.length)
    out.add(['unbound_artifacts'], 'profile', 'must not repeat a name');
  const both = declared.filter((a) => bound.has(a));
  if (both.length > 0)
    out.add(['unbound_artifacts'], 'profile', `names bound artifacts: ${[...new Set(both)].join(', ')}`);
  const undeclared = ARTIFACT_NAMES.filter((a) => !bound.has(a) && !declared.includes(a));
  if (undeclared.length > 0)
    out.add(
      ['unbound_artifacts'],
      'profile',
      `omits artifacts without declaring them: ${undeclared.join(', ')}`,
    );
}

function absent(obj: JsonObject, member: string): boolean {
  const v = obj.get(member);
  return v === undefined || v === null;
}

function timestampMs(value: JsonValue | undefined): number | null {
  if (typeof value !== 'string') return null;
  const ts = parseTimestamp(value);
  return typeof ts === 'string' ? null : ts.epochMs;
}

function describeType(value: JsonValue): string {
  if (value === null) return 'null';
  if (typeof value === 'string') return 'a string';
  if (typeof value === 'boolean') return 'a boolean';
  if (value instanceof JsonNumber) return value.isInteger ? 'an integer' : 'a float';
  if (Array.isArray(value)) return 'an array';
  return 'an object';
}

/** A value printed in a message: quoted, shortened, control characters escaped by JSON.stringify. */
function show(value: string): string {
  return JSON.stringify(value.length > 80 ? `${value.slice(0, 77)}...` : value);
}

function checkValue(value: JsonValue, spec: Spec, path: Path, out: Problems): void {
  if (typeof spec === 'string') {
    checkScalar(value, spec, path, out);
    return;
  }
  if ('int' in spec) {
    if (!(value instanceof JsonNumber) || !value.isInteger) {
      out.add(path, 'type', `must be an integer, not ${describeType(value)}`);
      return;
    }
    const n = Number(value.text);
    const { min, max } = spec.int;
    if (min !== undefined && n < min) out.add(path, 'range', `must be at least ${min}, not ${value.text}`);
    if (max !== undefined && n > max) out.add(path, 'range', `must be at most ${max}, not ${value.text}`);
    return;
  }
  if ('enum' in spec) {
    const ok = spec.enum.some((e) =>
      typeof e === 'number'
        ? value instanceof JsonNumber && value.isInteger && value.text === String(e)
        : value === e,
    );
    if (!ok) {
      const got = typeof value === 'string' ? show(value) : describeType(value);
      out.add(
        path,
        'enum',
        `must be one of ${spec.enum.map((e) => JSON.stringify(e)).join(', ')}, not ${got}`,
      );
    }
    return;
  }
  if ('array' in spec) {
    if (!Array.isArray(value)) {
      out.add(path, 'type', `must be an array, not ${describeType(value)}`);
      return;
    }
    if (spec.minItems !== undefined && value.length < spec.minItems)
      out.add(path, 'non-empty', `must hold at least ${spec.minItems} item(s)`);
    for (let i = 0; i < value.length; i++) {
      path.push(i);
      checkValue(value[i]!, spec.array, path, out);
      path.pop();
    }
    return;
  }
  checkObject(value, spec, path, out);
}

function checkScalar(value: JsonValue, spec: Scalar, path: Path, out: Problems): void {
  if (spec === 'boolean') {
    if (typeof value !== 'boolean')
      out.add(path, 'type', `must be true or false, not ${describeType(value)}`);
    return;
  }
  if (spec === 'any-object') {
    if (!isJsonObject(value)) out.add(path, 'type', `must be an object, not ${describeType(value)}`);
    return;
  }
  if (typeof value !== 'string') {
    out.add(path, 'type', `must be a string, not ${describeType(value)}`);
    return;
  }
  switch (spec) {
    case 'non-empty-string':
      if (value === '') out.add(path, 'non-empty', 'must not be empty');
      return;
    case 'timestamp': {
      const ts = parseTimestamp(value);
      if (typeof ts === 'string')
        out.add(path, 'timestamp', `must be an ISO 8601 UTC timestamp, not ${show(value)}`);
      return;
    }
    case 'hash':
      if (!HASH_VALUE.test(value))
        out.add(
          path,
          'hash',
          `must be sha256:<64 lowercase hex> or shake256:<64 lowercase hex>, not ${show(value)}`,
        );
      return;
    case 'uuid-v7':
      if (!UUID_V7.test(value))
        out.add(path, 'uuid-v7', `must be a lowercase UUID v7 (RFC 9562), not ${show(value)}`);
      return;
    case 'spiffe-id':
      if (!SPIFFE_ID.test(value) || Buffer.byteLength(value, 'utf8') > 2048)
        out.add(path, 'spiffe-id', `must be a SPIFFE ID (spiffe://trust-domain/path), not ${show(value)}`);
      return;
  }
}

const memberLists = new WeakMap<ObjectSpec, [string, Member][]>();

/** An object spec's members, listed once (the walk runs for every manifest a rotation re-signs). */
function membersOf(spec: ObjectSpec): [string, Member][] {
  let members = memberLists.get(spec);
  if (members === undefined) {
    members = Object.entries(spec.object);
    memberLists.set(spec, members);
  }
  return members;
}

/**
 * `path` is one array the walk pushes to and pops from (no copy per member: the walk runs for
 * every manifest a rotation re-signs); Problems.add formats it at once, so nothing keeps it.
 */
function checkObject(value: JsonValue, spec: ObjectSpec, path: Path, out: Problems): void {
  if (!isJsonObject(value)) {
    out.add(path, 'type', `must be an object, not ${describeType(value)}`);
    return;
  }
  const before = out.list.length;
  for (const key of value.keys()) {
    if (!Object.hasOwn(spec.object, key))
      out.add([...path, key], 'unknown-member', 'is not a member the spec defines');
  }
  for (const [key, member] of membersOf(spec)) {
    const v = value.get(key);
    if (v === undefined || (v === null && member.nullable)) {
      if (member.required) out.add([...path, key], 'required', 'is required');
      continue;
    }
    path.push(key);
    checkValue(v, member.spec, path, out);
    path.pop();
  }
  // Cross-field rules read members of the right shape only, as the SDK's model validators do.
  if (spec.check && out.list.length === before) spec.check(value, path, out);
}

/**
 * Schema problems of a v0.1 manifest, in document order; empty when it is schema-valid.
 * `version` itself is checked by the caller (an unsupported version is INCOMPATIBLE_VERSION).
 */
export function manifestSchemaProblems(root: JsonValue): SchemaProblem[] {
  const out = new Problems();
  if (!isJsonObject(root)) {
    out.add([], 'not-an-object', 'a manifest is a JSON object');
    return out.list;
  }
  checkObject(root, MANIFEST_V01, [], out);
  return out.list;
}

/** One line for a message: `schema: artifacts.system_prompt.hash: must be ... (+2 more)`. */
export function describeSchemaProblems(problems: readonly SchemaProblem[]): string {
  if (problems.length === 0) return 'schema-valid';
  const first = problems[0]!;
  const more = problems.length > 1 ? ` (+${problems.length - 1} more)` : '';
  return `schema: ${first.path === '' ? '(root)' : first.path}: ${first.message}${more}`;
}
