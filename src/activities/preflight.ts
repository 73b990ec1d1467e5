/**
 * Runbook: the pre-rotation checklist. Each item is a gate with a verdict and a reason; the
 * workflow stops before t=0 when any gate fails.
 */
import { randomBytes } from 'node:crypto';
import { errorMessage } from '../errors';
import { inTransaction } from '../store/db';
import { activeKey } from '../store/keys';
import { countManifests } from '../store/manifests';
import { appendRevocations } from '../store/revocations';
import { lastCompletedRotation } from '../store/rotations';
import { type ActivityDeps, stepLog } from './deps';
import { postToWebhook } from './notify';
import type { Gate, PreflightInput, PreflightResult } from './types';

const DAY_MS = 86_400_000;

export function preflightActivities(deps: ActivityDeps) {
  async function preflight(input: PreflightInput): Promise<PreflightResult> {
    const gates: Gate[] = [];
    const gate = (name: string, ok: boolean, detail: string) => gates.push({ name, ok, detail });

    const current = await activeKey(deps.pool, input.identity);
    if (!current) {
      gate(
        'active-key',
        false,
        `identity '${input.identity}' has no active key: run \`rotor key init --identity ${input.identity}\``,
      );
      return { ok: false, activeManifests: 0, gates };
    }
    gate('active-key', true, `${current.keyId} (${current.custodian})`);

    // The 90-day policy: a key rotated early for any reason is not rotated again until it is due.
    if (input.trigger === 'scheduled') {
      const since = current.activatedAt ?? current.createdAt;
      const last = await lastCompletedRotation(deps.pool, input.identity);
      const reference = last?.endedAt && last.endedAt > since ? last.endedAt : since;
      const ageDays = (Date.now() - reference.getTime()) / DAY_MS;
      if (ageDays < input.minKeyAgeDays) {
        const due = new Date(reference.getTime() + input.minKeyAgeDays * DAY_MS).toISOString();
        return {
          ok: true,
          skip: `key ${current.keyId.slice(0, 12)}… is ${ageDays.toFixed(1)} days old; the next scheduled rotation is due ${due}`,
          oldKeyId: current.keyId,
          activeManifests: 0,
          gates,
        };
      }
    }

    const activeManifests = await countManifests(deps.pool, { keyId: current.keyId, status: 'active' });
    gate('manifests-counted', true, `${activeManifests} active manifest(s) signed by ${current.keyId}`);

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

    return { ok: gates.every((g) => g.ok), oldKeyId: current.keyId, activeManifests, gates };
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
  if (input.custodian === 'software' && !input.allowSoftwareCustodian) {
    gate(
      'custodian-policy',
      false,
      'the software custodian is not an HSM and this policy requires one (allowSoftwareCustodian is false)',
    );
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
