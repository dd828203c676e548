// The body contextd sends upstream: the client's request with `messages`
// replaced by the assembled prompt. Serialising it was ~9% of contextd's CPU
// on a long window (105 messages), most of it walking message objects that
// were the same as on the previous request: the history comes from the
// stores' in-process windows, deep-frozen and shared from one load to the
// next. So each such message is serialised once (kept beside the object,
// weakly), and the body is the client's other fields with the messages'
// JSON spliced in, byte for byte what JSON.stringify would give.

import { randomBytes } from 'node:crypto';
import type { ChatMessage } from '../domain.js';
import { isDeeplyFrozen } from '../freeze.js';

/** Stands in for the messages while the rest of the body is serialised; random per process, so no client text holds it. */
const PLACEHOLDER = `contextd-messages-${randomBytes(12).toString('hex')}`;
const QUOTED_PLACEHOLDER = JSON.stringify(PLACEHOLDER);

const jsonOfFrozen = new WeakMap<object, string>();

/** `JSON.stringify({ ...raw, messages })`, reusing the JSON of deep-frozen messages. */
export function upstreamBody(raw: Readonly<Record<string, unknown>>, messages: readonly ChatMessage[]): string {
  const shell = JSON.stringify({ ...raw, messages: PLACEHOLDER });
  const at = shell.indexOf(QUOTED_PLACEHOLDER);
  // Never expected: the placeholder somewhere else too (a toJSON of the client's? none survive parsing).
  if (at < 0 || shell.includes(QUOTED_PLACEHOLDER, at + 1)) return JSON.stringify({ ...raw, messages });
  let list = '[';
  for (let i = 0; i < messages.length; i++) list += (i === 0 ? '' : ',') + messageJson(messages[i]!);
  return `${shell.slice(0, at)}${list}]${shell.slice(at + QUOTED_PLACEHOLDER.length)}`;
}

function messageJson(message: ChatMessage): string {
  if (!isDeeplyFrozen(message)) return JSON.stringify(message);
  let json = jsonOfFrozen.get(message);
  if (json === undefined) {
    json = JSON.stringify(message);
    jsonOfFrozen.set(message, json);
  }
  return json;
}
