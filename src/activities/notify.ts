/**
 * On-call notices: a JSON POST whose `text` reads well in Slack (incoming webhooks take it as is).
 */
import { type ActivityDeps, stepLog } from './deps';
import type { NotifyInput } from './types';

export async function postToWebhook(url: string, body: Record<string, unknown>): Promise<void> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  await res.body?.cancel();
  if (!res.ok) throw new Error(`webhook ${new URL(url).host} answered ${res.status}`);
}

export function notifyActivities(deps: ActivityDeps) {
  async function notifyOnCall(input: NotifyInput): Promise<{ delivered: boolean }> {
    if (!deps.settings.onCallWebhook) {
      deps.log?.(`[${input.severity}] ${input.text}`);
      stepLog().warn('on-call notice (no webhook configured)', {
        severity: input.severity,
        text: input.text,
      });
      return { delivered: false };
    }
    await postToWebhook(deps.settings.onCallWebhook, { text: input.text, severity: input.severity });
    return { delivered: true };
  }
  return { notifyOnCall };
}
