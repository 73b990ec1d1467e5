/**
 * Runbook step 1 (t=0): the new key pair, generated inside the target custodian and registered
 * `pending`. Also the key-state transitions the workflow makes at later steps.
 */
import { registerKey, transitionKey } from '../store/keys';
import type { ActivityDeps } from './deps';
import type { GeneratedKeyInfo, GenerateKeyInput, SetKeyStateInput } from './types';

/** One label per rotation run, so a retried activity finds the key its first try made. */
export function newKeyLabel(identity: string, runId: string): string {
  return `rotor-${identity.replace(/[^A-Za-z0-9._-]/g, '-')}-${runId}`;
}

export function keygenActivities(deps: ActivityDeps) {
  async function generateKey(input: GenerateKeyInput): Promise<GeneratedKeyInfo> {
    const custodian = await deps.custodian(input.custodian);
    const label = newKeyLabel(input.identity, input.runId);
    let key = await custodian.lookup(label);
    if (!key) {
      await deps.failpoint?.reach('generateKey:before-generate');
      key = await custodian.generate(label);
    }
    await deps.failpoint?.reach('generateKey:after-generate');
    const description = await custodian.describe(key.handle);
    // Registering the same key again returns the existing row: a retried attempt is harmless.
    await registerKey(deps.pool, {
      identity: input.identity,
      keyId: key.keyId,
      publicKey: key.publicKey,
      custodian: input.custodian,
      handle: key.handle,
      state: 'pending',
      description,
    });
    return { keyId: key.keyId, custodian: input.custodian, handle: key.handle, summary: description.summary };
  }

  async function setKeyState(input: SetKeyStateInput): Promise<void> {
    await transitionKey(deps.pool, input.keyId, input.to);
  }

  return { generateKey, setKeyState };
}
