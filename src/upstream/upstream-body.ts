// The body contextd sends upstream, as JSON text. Stored messages are frozen
// and go out again on every turn while they stay in the window, so each one's
// JSON is produced once and kept (by object, so it goes when the message does)
// rather than serialised anew for every request.

import type { ChatMessage } from '../domain.js';

const jsonOfFrozen = new WeakMap<object, string>();

/** Exactly `JSON.stringify({ ...raw, messages })` for a body parsed from JSON, with stored messages' JSON reused. */
export function upstreamBodyJson(raw: Readonly<Record<string, unknown>>, messages: readonly ChatMessage[]): string {
  const members: string[] = [];
  let hasMessages = false;
  for (const [name, value] of Object.entries(raw)) {
    if (name === 'messages') {
      members.push(`"messages":${messagesJson(messages)}`);
      hasMessages = true;
    } else if (value !== undefined) {
      members.push(`${JSON.stringify(name)}:${JSON.stringify(value)}`);
    }
  }
  if (!hasMessages) members.push(`"messages":${messagesJson(messages)}`);
  return `{${members.join(',')}}`;
}

function messagesJson(messages: readonly ChatMessage[]): string {
  return `[${messages.map(messageJson).join(',')}]`;
}

/** A frozen message cannot change, so its JSON is kept; the stores freeze what they hand out deeply. */
function messageJson(message: ChatMessage): string {
  if (!Object.isFrozen(message)) return JSON.stringify(message);
  let json = jsonOfFrozen.get(message);
  if (json === undefined) {
    json = JSON.stringify(message);
    jsonOfFrozen.set(message, json);
  }
  return json;
}
