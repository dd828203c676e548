// Shared set-up of the end-to-end suites: a fake upstream, a real contextd
// process in front of it, and the official openai client driving it.
import OpenAI from 'openai';
import { startContextd, type ContextdProcess } from '../support/contextd-process.js';
import type { FakeUpstream } from '../support/fake-upstream.js';

export const API_KEY = 'sk-test-e2e-0123456789abcdefghijklmnop';

export function contextdConfig(upstream: FakeUpstream, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    server: { host: '127.0.0.1', body_limit: '256kb' },
    upstream: { base_url: upstream.url, timeout: '5s', connect_timeout: '2s' },
    ...overrides,
  };
}

export async function startInFrontOf(upstream: FakeUpstream, overrides: Record<string, unknown> = {}): Promise<ContextdProcess> {
  return startContextd({ config: contextdConfig(upstream, overrides) });
}

export function clientFor(contextd: ContextdProcess, conversation: string | undefined, apiKey = API_KEY): OpenAI {
  return new OpenAI({
    baseURL: contextd.baseURL,
    apiKey,
    maxRetries: 0,
    defaultHeaders: conversation === undefined ? {} : { 'x-conversation-id': conversation },
  });
}

export interface StoredRow {
  seq: number;
  message: OpenAI.ChatCompletionMessageParam & Record<string, unknown>;
  tokens: number;
}

/** Everything stored for a conversation, through the self-service conversation API. */
export async function storedMessages(contextd: ContextdProcess, conversation: string, apiKey = API_KEY): Promise<StoredRow[]> {
  const rows: StoredRow[] = [];
  let after = 0;
  for (;;) {
    const res = await fetch(`${contextd.url}/contextd/v1/conversations/${conversation}/messages?after=${after}&limit=500`, {
      headers: { authorization: `Bearer ${apiKey}` },
    });
    if (res.status === 404) return rows;
    if (!res.ok) throw new Error(`conversation API answered ${res.status}: ${await res.text()}`);
    const page = (await res.json()) as { data: StoredRow[]; has_more: boolean; next_after: number };
    rows.push(...page.data);
    if (!page.has_more) return rows;
    after = page.next_after;
  }
}

export function lastUserText(messages: readonly { role: string; content?: unknown }[]): string {
  for (let i = messages.length - 1; i >= 0; i--) if (messages[i]!.role === 'user') return String(messages[i]!.content);
  return '';
}
