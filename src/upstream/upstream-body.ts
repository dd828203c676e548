// The body contextd sends upstream: the client's request with `messages`
// replaced by the assembled prompt. Serialising it was ~9% of contextd's CPU
// on a long window (105 messages), most of it walking message objects that
// were the same as on the previous request: the history comes from the
// stores' in-process windows, deep-frozen and shared from one load to the
// next. So each such message is serialised once (frozenJson, freeze.ts; a
// store that parsed it hands its JSON over, so a new turn is not serialised
// on the next request's path either), and the body is the client's other
// fields with the messages' JSON spliced in, byte for byte what
// JSON.stringify would give. The Responses API's body (responses-body.ts)
// splices its items the same way.

import { randomBytes } from 'node:crypto';
import type { ChatMessage } from '../domain.js';
import { frozenJson } from '../freeze.js';

/** Stands in for the list while the rest of the body is serialised; random per process, so no client text holds it. */
const PLACEHOLDER = `contextd-list-${randomBytes(12).toString('hex')}`;
const QUOTED_PLACEHOLDER = JSON.stringify(PLACEHOLDER);

/** `JSON.stringify({ ...raw, messages })`, reusing the JSON of deep-frozen messages. */
export function upstreamBody(raw: Readonly<Record<string, unknown>>, messages: readonly ChatMessage[]): string {
  return withJsonList(raw, 'messages', messages.map(frozenJson));
}

/**
 * `{ ...raw, [field]: [...] }` with the list's elements given as JSON text (an
 * element may be several, comma-separated), byte for byte what JSON.stringify
 * would give for them.
 */
export function withJsonList(raw: Readonly<Record<string, unknown>>, field: string, elementsJson: readonly string[]): string {
  const shell = JSON.stringify({ ...raw, [field]: PLACEHOLDER });
  const at = shell.indexOf(QUOTED_PLACEHOLDER);
  const list = `[${elementsJson.filter((json) => json !== '').join(',')}]`;
  // Never expected: the placeholder somewhere else too (a toJSON of the client's? none survive parsing).
  if (at < 0 || shell.includes(QUOTED_PLACEHOLDER, at + 1)) return JSON.stringify({ ...raw, [field]: JSON.parse(list) as unknown });
  return `${shell.slice(0, at)}${list}${shell.slice(at + QUOTED_PLACEHOLDER.length)}`;
}
