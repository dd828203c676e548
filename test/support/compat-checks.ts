// What every client-compatibility test checks, whatever the client: the prompt
// the upstream received keeps OpenAI's rules (tool pairs, ids, pinned
// instructions first, budget) and what was stored holds each message once.
import { expect } from 'vitest';
import type { ChatMessage } from '../../src/domain.js';
import { describeToolSequenceProblem, findToolSequenceProblem } from '../../src/context/tool-sequence.js';
import type { RecordedRequest } from './fake-upstream.js';

export interface PromptExpectations {
  /** The pinned instructions the client sent, expected first and in order. */
  instructions?: readonly string[];
  /** Texts that must appear somewhere in the prompt (history the client did not send). */
  contains?: readonly string[];
  /** The route's budget: the response's x-contextd-context-tokens must not exceed it. */
  budgetTokens?: number;
}

/** The messages a recorded chat request carried. */
export function promptOf(request: Pick<RecordedRequest, 'json' | 'url'>): ChatMessage[] {
  const body = request.json as { messages?: ChatMessage[] } | undefined;
  if (!Array.isArray(body?.messages)) throw new Error(`request to ${request.url} carried no messages`);
  return body.messages;
}

export function textOf(message: object): string {
  const { content } = message as { content?: unknown };
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) return content.map((part: { text?: unknown }) => (typeof part?.text === 'string' ? part.text : '')).join('');
  return '';
}

/** Fails with a readable account when the prompt breaks OpenAI's tool-message rules. */
export function expectValidToolSequence(messages: readonly object[]): void {
  const problem = findToolSequenceProblem(messages as readonly ChatMessage[]);
  expect(problem === undefined ? 'valid' : describeToolSequenceProblem(problem)).toBe('valid');
}

export function expectValidPrompt(request: RecordedRequest, expectations: PromptExpectations = {}): ChatMessage[] {
  const messages = promptOf(request);
  expectValidToolSequence(messages);
  const instructions = expectations.instructions ?? [];
  expect(messages.slice(0, instructions.length).map(textOf)).toEqual(instructions);
  const all = messages.map(textOf).join('\n');
  for (const text of expectations.contains ?? []) expect(all).toContain(text);
  return messages;
}

/** Stored rows (from the conversation API) hold each message once and keep the tool rules. */
export function expectStoredOnce(storedRows: readonly { seq: number; message: object }[]): void {
  const rows = storedRows as readonly { seq: number; message: ChatMessage }[];
  const seqs = rows.map((row) => row.seq);
  expect(new Set(seqs).size).toBe(seqs.length);
  const problem = findToolSequenceProblem(rows.map((row) => row.message), { allowOpenTail: true });
  expect(problem === undefined ? 'valid' : describeToolSequenceProblem(problem)).toBe('valid');
  // The same message twice in a row is a re-send stored again (a real turn never repeats itself verbatim back to back).
  const keys = rows.map((row) => JSON.stringify([row.message.role, textOf(row.message), row.message.tool_calls ?? null, row.message.tool_call_id ?? null]));
  for (let i = 1; i < keys.length; i++) expect(keys[i], `rows ${rows[i - 1]!.seq} and ${rows[i]!.seq} are one message stored twice`).not.toBe(keys[i - 1]);
}
