/**
 * The outbound delivery webhook's signature: `Rotor-Signature: t=<unix seconds>,v1=<hex>` where
 * v1 is HMAC-SHA256(secret, `<t>.<body>`). Signing the timestamp with the body lets a receiver
 * refuse replays older than its tolerance; the receiver compares in constant time.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export const SIGNATURE_HEADER = 'Rotor-Signature';

export function signWebhook(secret: string, body: string, unixSeconds: number): string {
  const mac = createHmac('sha256', secret).update(`${unixSeconds}.${body}`).digest('hex');
  return `t=${unixSeconds},v1=${mac}`;
}

/** What a receiver does: null when the signature is good and fresh, otherwise why not. */
export function checkWebhookSignature(
  secret: string,
  header: string | undefined,
  body: string,
  nowSeconds: number,
  toleranceSeconds = 300,
): string | null {
  if (!header) return `no ${SIGNATURE_HEADER} header`;
  const parts = new Map(
    header.split(',').map((p) => {
      const i = p.indexOf('=');
      return [p.slice(0, i).trim(), p.slice(i + 1).trim()] as const;
    }),
  );
  const t = Number(parts.get('t'));
  const v1 = parts.get('v1') ?? '';
  if (!Number.isInteger(t)) return `${SIGNATURE_HEADER} has no timestamp t=`;
  if (Math.abs(nowSeconds - t) > toleranceSeconds)
    return `${SIGNATURE_HEADER} timestamp is outside the tolerance`;
  const expected = createHmac('sha256', secret).update(`${t}.${body}`).digest();
  const given = /^[0-9a-f]{64}$/.test(v1) ? Buffer.from(v1, 'hex') : Buffer.alloc(32);
  return timingSafeEqual(expected, given) && v1.length === 64 ? null : 'the signature does not match';
}
