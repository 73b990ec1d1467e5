/**
 * The rotation's vocabulary, shared by every layer (docs/ARCHITECTURE.md, "Layering"): the
 * triggers, where a key is kept, what a verifier reported. Types and constants only, no imports,
 * so the workflow sandbox, the activities, the HTTP service and the CLI can all depend on it
 * without depending on each other.
 */

/** What starts a rotation (docs/runbook-key-rotation.txt, "Triggers"). */
export const TRIGGERS = ['compromise', 'scheduled', 'personnel', 'hsm-replacement'] as const;
export type Trigger = (typeof TRIGGERS)[number];

/** Where a signing key lives: an HSM through PKCS#11, or software (tests and the demo). */
export type CustodianKind = 'pkcs11' | 'software';
export const CUSTODIAN_KINDS: readonly CustodianKind[] = ['pkcs11', 'software'];

/** One verifier as a gate sees it: the anchor version it holds and whether it took the new key. */
export interface VerifierAdoption {
  verifierId: string;
  anchorVersion: number | null;
  lastSeen: string;
  adopted: boolean;
  acceptedNewKey: boolean;
}

/**
 * How many verifiers or manifests a status or an activity result lists; the rest are counted
 * (bounded workflow history: a result never grows with the fleet).
 */
export const SAMPLE_SIZE = 20;

/**
 * The version a re-issued v0.1 manifest gets (the rotation policy's `reissueAs`): "0.2", a
 * COSE_Sign1 (agent-manifest ended new v0.1 issuance on 2026-11-30, and a re-issue is an
 * issuance), or "same" (each manifest keeps its version). A v0.2 manifest is always re-issued as v0.2.
 */
export type ReissueAs = '0.2' | 'same';
export const REISSUE_AS: readonly ReissueAs[] = ['0.2', 'same'];

/**
 * A signing identity's name: what `rotor serve` publishes an anchor for (ROTOR_IDENTITY), what a
 * verifier checks in under, and what the rotation page's URL names.
 */
export const IDENTITY_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
