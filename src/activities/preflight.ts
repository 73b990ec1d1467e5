/**
 * Runbook: the pre-rotation checklist. Each item is a gate with a verdict and a reason; the
 * workflow stops before t=0 when any gate fails. The gates that read the store are in ./gates.ts,
 * shared with `rotor rotate plan`, so the plan predicts with the same code the rotation checks.
 */
import { randomBytes } from 'node:crypto';
import { errorMessage } from '../errors';
import { inTransaction } from '../store/db';
import { appendRevocations } from '../store/revocations';
import { currentTrustAnchor } from '../store/trust-anchors';
import { type ActivityDeps, stepLog } from './deps';
import { activeKeyGate, custodianPolicyRefusal, keyAge, manifestsGate } from './gates';
import { postToWebhook } from './notify';
import type { Gate, PreflightInput, PreflightResult } from './types';

export function preflightActivities(deps: ActivityDeps) {
  async function preflight(input: PreflightInput): Promise<PreflightResult> {
    const gates: Gate[] = [];
    const gate = (name: string, ok: boolean, detail: string) => gates.push({ name, ok, detail });

    const { gate: keyGate, key: current } = await activeKeyGate(deps.pool, input.identity);
    gates.push(keyGate);
    if (!current) return { ok: false, activeManifests: 0, gates };

    // The 90-day policy: a key rotated early for any reason is not rotated again until it is due.
    if (input.trigger === 'scheduled') {
      const age = await keyAge(deps.pool, input.identity, current, input.minKeyAgeDays, new Date());
      if (!age.due) {
        return { ok: true, skip: age.skipReason, oldKeyId: current.keyId, activeManifests: 0, gates };
      }
    }

    const counted = await manifestsGate(deps.pool, current.keyId);
    gates.push(counted.gate);
    const activeManifests = counted.count;

    await checkCustodian(deps, input, gate);
    await checkCrlEndpoint(deps, gate);
    await checkCrlWritable(deps, gate);

    const text =
      `:rotating_light: rotor: ${input.trigger} rotation of signing identity *${input.identity}* starting ` +
      `(requested by ${input.requestedBy}: ${input.reason}). ${activeManifests} manifest(s) will be re-signed; ` +
      'expect a temporary spike in INVALID verification results while verifiers pick up the new trust anchor.';
    if (deps.settings.onCallWebhook) {
      try {
        await postToWebhook(deps.settings.onCallWebhook, {
          text,
          severity: 'warning',
          workflow_id: input.workflowId,
        });
        gate('on-call-notified', true, 'webhook accepted the notice');
      } catch (err) {
        gate('on-call-notified', false, `on-call webhook failed: ${errorMessage(err)}`);
      }
    } else {
      deps.log?.(text);
      stepLog().warn('on-call notice (no webhook configured)', { severity: 'warning', text });
      gate('on-call-notified', true, 'no ROTOR_ONCALL_WEBHOOK configured: notice written to the worker log');
    }

    const anchor = await currentTrustAnchor(deps.pool, input.identity);
    return {
      ok: gates.every((g) => g.ok),
      oldKeyId: current.keyId,
      anchorVersion: anchor?.version ?? 0,
      activeManifests,
      gates,
    };
  }

  return { preflight };
}

type GateFn = (name: string, ok: boolean, detail: string) => void;

/**
 * The custodian is healthy, and a probe key made the way the new key will be shows where it lives:
 * generated on the device and never extractable. The probe is destroyed at once.
 */
async function checkCustodian(deps: ActivityDeps, input: PreflightInput, gate: GateFn): Promise<void> {
  let custodian: Awaited<ReturnType<ActivityDeps['custodian']>>;
  try {
    custodian = await deps.custodian(input.custodian);
  } catch (err) {
    gate('custodian-health', false, `${input.custodian} custodian cannot be opened: ${errorMessage(err)}`);
    return;
  }
  const health = await custodian.health();
  gate('custodian-health', health.ok, health.detail);
  if (!health.ok) return;
  const refusal = custodianPolicyRefusal(input.custodian, input.allowSoftwareCustodian);
  if (refusal) {
    gate('custodian-policy', false, refusal);
    return;
  }
  const label = `rotor-preflight-probe-${randomBytes(6).toString('hex')}`;
  try {
    const probe = await custodian.generate(label);
    try {
      const d = await custodian.describe(probe.handle);
      const hsmOk =
        d.isHsm && d.generatedOnDevice && d.neverExtractable && d.alwaysSensitive && !d.extractable;
      if (input.custodian === 'pkcs11') {
        gate(
          'custodian-policy',
          hsmOk,
          hsmOk
            ? `keys are generated on the token and never extractable (${d.summary})`
            : `a key generated on this token is not provably device-bound: ${d.summary}`,
        );
      } else {
        gate('custodian-policy', true, `software custodian allowed by policy: ${d.summary}`);
      }
    } finally {
      await custodian.destroy(probe.handle);
    }
  } catch (err) {
    gate('custodian-policy', false, `probe key generation failed: ${errorMessage(err)}`);
  }
}

async function checkCrlEndpoint(deps: ActivityDeps, gate: GateFn): Promise<void> {
  const base = deps.settings.publicUrl;
  if (!base) {
    gate('crl-endpoint', false, 'ROTOR_PUBLIC_URL is not set, so the CRL endpoint cannot be checked');
    return;
  }
  const url = new URL('/.well-known/agent-manifest/revocation', base).toString();
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
    await res.body?.cancel();
    gate('crl-endpoint', res.ok, res.ok ? `GET ${url} → ${res.status}` : `GET ${url} answered ${res.status}`);
  } catch (err) {
    gate('crl-endpoint', false, `GET ${url} failed: ${errorMessage(err)}`);
  }
}

/** Writes a probe record inside a transaction that is always rolled back: proof of write, no trace. */
async function checkCrlWritable(deps: ActivityDeps, gate: GateFn): Promise<void> {
  const probeId = `rotor-preflight-probe-${randomBytes(6).toString('hex')}`;
  const rolledBack = new Error('probe rolled back');
  try {
    await inTransaction(deps.pool, async (client) => {
      const probe = { manifestId: probeId, signerKeyId: '0'.repeat(64), revokedAt: new Date().toISOString() };
      const line = JSON.stringify({
        manifest_id: probe.manifestId,
        revoked_at: probe.revokedAt,
        reason: 'preflight write probe (rolled back)',
        revoked_by: deps.settings.revokedBy,
        revocation_signature: '',
        signer_key_id: probe.signerKeyId,
      });
      await appendRevocations(client, [{ ...probe, line }]);
      throw rolledBack;
    });
  } catch (err) {
    if (err === rolledBack) {
      gate('crl-writable', true, 'a probe record was written and rolled back');
      return;
    }
    gate('crl-writable', false, `the CRL store refused a write: ${errorMessage(err)}`);
  }
}
