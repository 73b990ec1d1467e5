-- Manifest delivery to agents (`GET /v1/agents/{agent_id}/manifest` on `rotor serve`).
--
-- A re-issued twin is handed to its agent only once the rotation has released its key for
-- delivery, which it does after the verifier adoption gate passed for the anchor that trusts that
-- key (runbook "Zero-downtime overlap": deploy new manifests only where verifiers know the key).
-- Until then the agent keeps getting its original, which stays valid until revocation.

-- Credentials agents (or a deployment system fetching for many agents) present. Only a SHA-256 of
-- the secret is kept: the secret is 32 random bytes, so a fast hash is as strong as a slow one.
CREATE TABLE delivery_credentials (
  credential_id text COLLATE "C" PRIMARY KEY CHECK (credential_id ~ '^[a-z0-9]{8,32}$'),
  kind text NOT NULL CHECK (kind IN ('agent', 'deployment')),
  -- kind 'agent': the one agent_id it may fetch. kind 'deployment': agent_id prefixes it may fetch.
  agent_id text,
  agent_prefixes text[] NOT NULL DEFAULT '{}',
  label text NOT NULL DEFAULT '',
  secret_sha256 bytea NOT NULL CHECK (octet_length(secret_sha256) = 32),
  created_at timestamptz NOT NULL DEFAULT now(),
  revoked_at timestamptz,
  CHECK ((kind = 'agent' AND agent_id IS NOT NULL AND agent_prefixes = '{}')
      OR (kind = 'deployment' AND agent_id IS NULL AND cardinality(agent_prefixes) > 0))
);

-- Per key: whether manifests re-issued with it may be handed out. A twin whose key has no
-- 'released' row is held back; originals (no previous_manifest_id) are always deliverable.
CREATE TABLE delivery_releases (
  key_id text COLLATE "C" PRIMARY KEY,
  identity text NOT NULL,
  state text NOT NULL CHECK (state IN ('released', 'withdrawn')),
  -- The anchor version whose adoption released the key (null for a compromise or a rollback).
  anchor_version integer,
  workflow_id text NOT NULL,
  reason text NOT NULL,
  released_at timestamptz NOT NULL DEFAULT now(),
  withdrawn_at timestamptz
);

-- Every agent seen fetching, and what it was last given: the pickup gate's "never seen" policy.
CREATE TABLE delivery_agents (
  agent_id text COLLATE "C" PRIMARY KEY,
  first_seen_at timestamptz NOT NULL,
  last_seen_at timestamptz NOT NULL,
  last_manifest_id text COLLATE "C" NOT NULL,
  last_credential_id text COLLATE "C" NOT NULL
);

-- The first and last fetch of each re-issued twin by its agent: the pickup record.
CREATE TABLE manifest_pickups (
  manifest_id text COLLATE "C" PRIMARY KEY,
  agent_id text COLLATE "C" NOT NULL,
  key_id text COLLATE "C" NOT NULL,
  credential_id text COLLATE "C" NOT NULL,
  first_fetched_at timestamptz NOT NULL,
  last_fetched_at timestamptz NOT NULL,
  fetches bigint NOT NULL DEFAULT 1
);
CREATE INDEX manifest_pickups_key ON manifest_pickups (key_id);

-- The agent's manifests, newest first: the lookup behind every fetch.
CREATE INDEX manifests_agent_issued ON manifests (agent_id, issued_at DESC, stored_at DESC)
  WHERE status <> 'revoked';

-- Outbound webhook per identity, for deployment systems that push manifests to agents. The HMAC
-- secret must be readable to sign with; it is never logged or put in workflow history.
CREATE TABLE delivery_webhooks (
  identity text PRIMARY KEY,
  url text NOT NULL CHECK (url ~ '^https?://'),
  secret text NOT NULL CHECK (length(secret) >= 16),
  batch_size integer NOT NULL DEFAULT 500 CHECK (batch_size BETWEEN 1 AND 10000),
  created_at timestamptz NOT NULL DEFAULT now()
);

-- Each batch a release sent (or failed to send): a retried release skips batches already sent.
CREATE TABLE delivery_webhook_batches (
  key_id text COLLATE "C" NOT NULL,
  batch_no integer NOT NULL,
  identity text NOT NULL,
  agents integer NOT NULL,
  status text NOT NULL CHECK (status IN ('sent', 'failed')),
  attempts integer NOT NULL,
  http_status integer,
  last_error text,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (key_id, batch_no)
);
