/**
 * The spec's schema (src/manifest/schema.ts): one case per named rule, each a single change to a
 * schema-valid manifest, and the synthetic manifests `rotor manifests seed` writes all valid.
 */
import { describe, expect, it } from 'vitest';
import {
  manifestSchemaProblems,
  parseJson,
  publicKeyFromSeed,
  type SchemaRule,
  softwareSigner,
  verifyManifest,
} from '../../src/manifest/index';
import { syntheticManifests } from '../../src/synthetic/manifests';
import { type Loose, validUnsigned } from './vectors';

const problemsOf = (m: Loose) => manifestSchemaProblems(parseJson(JSON.stringify(m)));
const withChange = (fn: (m: Loose) => void): Loose => {
  const m = validUnsigned();
  fn(m);
  return m;
};
const hop = (n: number, extra: Loose = {}) => ({
  hop: n,
  principal_type: 'human',
  principal_id: 'mailto:lead@trust.example',
  delegated_at: '2026-05-30T00:00:00Z',
  scope_grant: { max_delegation_depth: 1 },
  delegation_signature: 'c2ln',
  ...extra,
});

describe('schema: the valid baseline', () => {
  it('validUnsigned() has no problems', () => {
    expect(problemsOf(validUnsigned())).toEqual([]);
  });
});

const cases: [SchemaRule, string, (m: Loose) => void, string][] = [
  ['not-an-object', 'a manifest that is an array', () => {}, ''],
  [
    'unknown-member',
    'intent.score (an extra input at depth 2)',
    (m) => (m.intent.score = 0.9),
    'intent.score',
  ],
  ['unknown-member', 'a top-level extra member', (m) => (m.ttl_days = 3), 'ttl_days'],
  [
    'unknown-member',
    'data_scope.row_limit',
    (m) => (m.data_scope = { automated_decision_making: false, row_limit: 5 }),
    'data_scope.row_limit',
  ],
  [
    'unknown-member',
    'operational_lifecycle.temperature',
    (m) => (m.operational_lifecycle = { expected_lifetime_days: 90, temperature: 0.2 }),
    'operational_lifecycle.temperature',
  ],
  ['required', 'no agent_id', (m) => delete m.agent_id, 'agent_id'],
  [
    'required',
    'a binding without bound_at',
    (m) => delete m.artifacts.system_prompt.bound_at,
    'artifacts.system_prompt.bound_at',
  ],
  ['type', 'null for a required member', (m) => (m.issuer = null), 'issuer'],
  [
    'type',
    'hitl_record.required as a string',
    (m) => (m.hitl_record.required = 'true'),
    'hitl_record.required',
  ],
  [
    'type',
    'an integer written as a float',
    (m) => (m.operational_lifecycle = { expected_lifetime_days: 90.0001 }),
    'operational_lifecycle.expected_lifetime_days',
  ],
  ['enum', 'an unknown crypto_profile', (m) => (m.crypto_profile = 'hybrid'), 'crypto_profile'],
  [
    'enum',
    'an unknown classification',
    (m) => (m.artifacts.system_prompt.classification = 'secret'),
    'artifacts.system_prompt.classification',
  ],
  [
    'uuid-v7',
    'a UUID v4 manifest_id',
    (m) => (m.manifest_id = '0190b6e0-0000-4000-8000-000000000000'),
    'manifest_id',
  ],
  [
    'uuid-v7',
    'an uppercase UUID',
    (m) => (m.manifest_id = '0190B6E0-0000-7000-8000-000000000000'),
    'manifest_id',
  ],
  ['uuid-v7', 'a manifest_id with a control character', (m) => (m.manifest_id = 'x\u001b[2J'), 'manifest_id'],
  [
    'hash',
    'a hash without its algorithm',
    (m) => (m.artifacts.system_prompt.hash = 'a'.repeat(64)),
    'artifacts.system_prompt.hash',
  ],
  ['timestamp', 'a timestamp without an offset', (m) => (m.issued_at = '2026-06-01T00:00:00'), 'issued_at'],
  [
    'spiffe-id',
    'an agent_id that is not a SPIFFE id',
    (m) => (m.agent_id = 'https://agent.example'),
    'agent_id',
  ],
  [
    'range',
    'a memory ttl under an hour',
    (m) =>
      (m.artifacts.memory_baseline = {
        baseline_id: '0190b6e0-0000-7000-8000-0000000000bb',
        snapshot_hash: `sha256:${'c'.repeat(64)}`,
        memory_type: 'persistent',
        store: 'redis/7',
        approved_at: '2026-05-30T00:00:00Z',
        ttl_seconds: 60,
        drift_policy: 'log-only',
        bound_at: '2026-05-30T00:00:00Z',
      }),
    'artifacts.memory_baseline.ttl_seconds',
  ],
  ['non-empty', 'an empty intent statement', (m) => (m.intent.statement = ''), 'intent.statement'],
  [
    'validity-window',
    'expires_at 59 minutes after issued_at',
    (m) => (m.expires_at = '2026-06-01T00:59:00Z'),
    'expires_at',
  ],
  [
    'validity-window',
    'expires_at 366 days after issued_at',
    (m) => (m.expires_at = '2027-06-02T00:00:00Z'),
    'expires_at',
  ],
  [
    'model-hash',
    'an API model with a model_hash',
    (m) => (m.artifacts.model_identity.model_hash = `sha256:${'d'.repeat(64)}`),
    'artifacts.model_identity.model_hash',
  ],
  [
    'model-hash',
    'a local model that is provider-asserted',
    (m) =>
      Object.assign(m.artifacts.model_identity, {
        deployment_type: 'local',
        model_hash: `sha256:${'d'.repeat(64)}`,
      }),
    'artifacts.model_identity.model_attestation_type',
  ],
  [
    'memory-type',
    'a session memory without snapshot_hash',
    (m) =>
      (m.artifacts.memory_baseline = {
        baseline_id: '0190b6e0-0000-7000-8000-0000000000bb',
        memory_type: 'session',
        store: 'redis/7',
        approved_at: '2026-05-30T00:00:00Z',
        drift_policy: 'log-only',
        bound_at: '2026-05-30T00:00:00Z',
      }),
    'artifacts.memory_baseline.snapshot_hash',
  ],
  [
    'agt-version',
    'a yaml-agt policy without agt_version',
    (m) => (m.artifacts.policy_bundle.policy_language = 'yaml-agt'),
    'artifacts.policy_bundle.agt_version',
  ],
  [
    'trace-window',
    'a decision trace that ends before it starts',
    (m) =>
      (m.artifacts.decision_trace = {
        trace_type: 'merkle-log',
        audit_chain_root: `sha256:${'e'.repeat(64)}`,
        audit_chain_uri: 'https://audit.example',
        signing_key_id: 'k1',
        audit_key_sealed: true,
        first_entry_at: '2026-05-30T00:00:00Z',
        last_entry_at: '2026-05-29T00:00:00Z',
        bound_at: '2026-05-30T00:00:00Z',
      }),
    'artifacts.decision_trace.first_entry_at',
  ],
  [
    'approver-identity',
    'a SPIFFE approver',
    (m) =>
      m.hitl_record.approvals.push({
        approval_id: '0190b6e0-0000-7000-8000-0000000000cc',
        approver_id: 'spiffe://trust.example/bot',
        approver_identity_type: 'did',
        approver_role: 'r',
        approved_at: '2026-05-30T00:00:00Z',
        approved_scope: { artifacts: [], risk_tier: 'low', approval_duration_seconds: 60 },
        approval_signature: 's',
        approval_method: 'hardware-key',
        evidence_uri: 'https://e.example',
      }),
    'hitl_record.approvals[0].approver_id',
  ],
  [
    'signature-algorithm',
    'a hybrid signature without its two parts',
    (m) =>
      (m.signature = {
        algorithm: 'hybrid-Ed25519-ML-DSA-65',
        key_id: 'k',
        key_type: 'hsm',
        signed_at: '2026-06-01T00:00:00Z',
      }),
    'signature',
  ],
  ['delegation-chain', 'an empty delegation_chain', (m) => (m.delegation_chain = []), 'delegation_chain'],
  [
    'delegation-chain',
    'hops out of order',
    (m) => (m.delegation_chain = [hop(0), hop(2)]),
    'delegation_chain[1].hop',
  ],
  [
    'delegation-chain',
    'deeper than the root allows',
    (m) => (m.delegation_chain = [hop(0), hop(1), hop(2)]),
    'delegation_chain',
  ],
  [
    'profile',
    'a full-binding manifest without policy_bundle',
    (m) => delete m.artifacts.policy_bundle,
    'artifacts',
  ],
  [
    'profile',
    'unbound_artifacts without the composition-only profile',
    (m) => (m.unbound_artifacts = ['rag_corpus']),
    'unbound_artifacts',
  ],
  [
    'egress-none',
    '"none" as an egress destination',
    (m) =>
      (m.artifacts.tool_manifest = {
        catalog_hash: `sha256:${'f'.repeat(64)}`,
        tools: [
          {
            tool_id: 'com.example.t',
            tool_name: 't',
            endpoint_id: 'spiffe://trust.example/mcp/t',
            schema_hash: `sha256:${'1'.repeat(64)}`,
            description_hash: `sha256:${'2'.repeat(64)}`,
            version: '1.0.0',
            egress_destinations: ['none'],
          },
        ],
        rug_pull_policy: 'deny-and-alert',
        bound_at: '2026-05-30T00:00:00Z',
      }),
    'artifacts.tool_manifest.tools[0].egress_destinations',
  ],
  [
    'assessed-at',
    'a passed assurance test without assessed_at',
    (m) =>
      (m.artifacts.system_prompt.assurance_test = {
        suite_id: 's',
        suite_version: '1.0.0',
        harness_version: 'h/1.0.0',
        result: 'passed',
      }),
    'artifacts.system_prompt.assurance_test.assessed_at',
  ],
];

describe('schema rules', () => {
  it.each(cases)('%s: %s', (rule, _name, change, path) => {
    const problems =
      rule === 'not-an-object' ? manifestSchemaProblems(parseJson('[1]')) : problemsOf(withChange(change));
    expect(problems.length).toBeGreaterThan(0);
    expect(problems).toContainEqual(expect.objectContaining({ rule, path }));
  });

  it('every rule has a case', () => {
    const named = new Set(cases.map(([rule]) => rule));
    const all: SchemaRule[] = [
      'not-an-object',
      'unknown-member',
      'required',
      'type',
      'enum',
      'uuid-v7',
      'hash',
      'timestamp',
      'spiffe-id',
      'range',
      'non-empty',
      'validity-window',
      'model-hash',
      'memory-type',
      'agt-version',
      'trace-window',
      'approver-identity',
      'signature-algorithm',
      'delegation-chain',
      'profile',
      'egress-none',
      'assessed-at',
    ];
    expect([...named].sort()).toEqual([...all].sort());
  });

  it('a composition-only manifest declares exactly what it leaves unbound', () => {
    const m = validUnsigned({ profile: 'composition-only' });
    delete m.hitl_record;
    const rest = [
      'tool_manifest',
      'rag_corpus',
      'memory_baseline',
      'decision_trace',
      'delegation_chain',
      'supply_chain',
      'hitl_record',
    ];
    expect(problemsOf({ ...m, unbound_artifacts: rest })).toEqual([]);
    expect(problemsOf({ ...m, unbound_artifacts: rest.slice(1) })).toContainEqual(
      expect.objectContaining({ rule: 'profile', message: expect.stringMatching(/tool_manifest/) }),
    );
    expect(problemsOf({ ...m, unbound_artifacts: [...rest, 'system_prompt'] })).toContainEqual(
      expect.objectContaining({
        rule: 'profile',
        message: expect.stringMatching(/names bound artifacts: system_prompt/),
      }),
    );
  });

  it('a message never prints a raw control character', () => {
    const [p] = problemsOf(withChange((m) => (m.manifest_id = 'x\u001b[2J\u0007')));
    expect(p!.message).not.toMatch(/[\u0000-\u001f]/);
  });
});

describe('synthetic manifests (rotor manifests seed, the demo, the benchmarks)', () => {
  it('are schema-valid and VALID, 240 of 240, with realistic variety', async () => {
    const seed = new Uint8Array(32).fill(5);
    const signer = softwareSigner(seed);
    const trustedKeys = new Map([[signer.keyId, publicKeyFromSeed(seed)]]);
    const seen = new Set<string>();
    let n = 0;
    for await (const text of syntheticManifests(240, signer, { seed: 11 })) {
      n++;
      expect(manifestSchemaProblems(parseJson(text))).toEqual([]);
      expect(verifyManifest(text, { trustedKeys, now: new Date() }).result).toBe('VALID');
      const m = JSON.parse(text);
      for (const k of Object.keys(m)) seen.add(k);
      for (const k of Object.keys(m.artifacts)) seen.add(`artifacts.${k}`);
    }
    expect(n).toBe(240);
    for (const k of [
      'attestation',
      'transparency_log_entry',
      'delegation_chain',
      'hitl_record',
      'data_scope',
      'operational_lifecycle',
      'intent',
      'log_retention',
      'artifacts.rag_corpus',
      'artifacts.memory_baseline',
      'artifacts.tool_manifest',
    ]) {
      expect(seen.has(k), k).toBe(true);
    }
  });
});
