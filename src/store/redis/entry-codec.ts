// A message as an entry of a conversation's msgs list:
//   `<seq>:<tokens>:<cumTokens>:<json of the rest>`
// The scripts read the three figures from the prefix and never decode the JSON
// (scripts.ts), so the JSON is the client's, byte for byte.

import type { ChatMessage, NewMessage, StoredMessage } from '../../domain.js';
import { deepFreeze } from '../../freeze.js';

/** What a list entry's JSON holds: the StoredMessage fields the entry's prefix does not. */
interface EntryBody {
  message: ChatMessage;
  digest: string;
  createdAtMs: number;
  turnKey?: string;
}

export function encodeEntry(stored: StoredMessage, cumTokens: number): string {
  requireCount('seq', stored.seq);
  requireCount('tokens', stored.tokens);
  requireCount('cumTokens', cumTokens);
  const body: EntryBody = {
    message: stored.message,
    digest: stored.digest,
    createdAtMs: stored.createdAtMs,
    ...(stored.turnKey !== undefined ? { turnKey: stored.turnKey } : {}),
  };
  return `${stored.seq}:${stored.tokens}:${cumTokens}:${JSON.stringify(body)}`;
}

/**
 * A turn as APPEND takes it: per message its tokens and the entry's JSON (the
 * script allocates the seqs and running totals); the turn key goes on the
 * first message. Throws before Redis is touched when a message cannot be encoded.
 */
export function encodeTurn(messages: readonly NewMessage[], createdAtMs: number, turnKey: string | undefined): string[] {
  const perMessage: string[] = [];
  messages.forEach((incoming, index) => {
    requireCount('tokens', incoming.tokens);
    const body: EntryBody = {
      message: incoming.message,
      digest: incoming.digest,
      createdAtMs,
      ...(index === 0 && turnKey !== undefined ? { turnKey } : {}),
    };
    perMessage.push(String(incoming.tokens), JSON.stringify(body));
  });
  return perMessage;
}

/**
 * The stored message an entry holds. Its message comes deep-frozen, with its
 * JSON text (freeze.ts): an upstream body that carries it splices that text in
 * rather than serialising the message again.
 */
export function decodeEntry(entry: string): StoredMessage {
  const afterSeq = entry.indexOf(':');
  const afterTokens = entry.indexOf(':', afterSeq + 1);
  const afterCum = entry.indexOf(':', afterTokens + 1);
  const json = entry.slice(afterCum + 1);
  const body = JSON.parse(json) as EntryBody;
  return {
    message: deepFreeze(body.message, messageJsonIn(json, body)),
    tokens: Number(entry.slice(afterSeq + 1, afterTokens)),
    digest: body.digest,
    seq: Number(entry.slice(0, afterSeq)),
    createdAtMs: body.createdAtMs,
    ...(body.turnKey !== undefined ? { turnKey: body.turnKey } : {}),
    cumTokens: Number(entry.slice(afterTokens + 1, afterCum)),
  };
}

const MESSAGE_FIRST = '{"message":';

/**
 * The message's own JSON inside an entry's: EntryBody's first member, written
 * by JSON.stringify, so the text up to the digest and createdAtMs that follow it
 * (a client's text cannot hold them unescaped). Undefined for an entry of
 * another shape.
 */
function messageJsonIn(json: string, body: EntryBody): string | undefined {
  if (!json.startsWith(MESSAGE_FIRST) || typeof body.digest !== 'string' || typeof body.createdAtMs !== 'number') return undefined;
  const end = json.lastIndexOf(`,"digest":${JSON.stringify(body.digest)},"createdAtMs":${JSON.stringify(body.createdAtMs)}`);
  return end > MESSAGE_FIRST.length ? json.slice(MESSAGE_FIRST.length, end) : undefined;
}

/**
 * What LOAD looks for in its entry at a cached window's `through`: the digest and
 * createdAtMs, spelled as in the entry's JSON (EntryBody's order, JSON.stringify's
 * numbers). A different message stored under that seq carries another pair.
 */
export function entryTag(stored: StoredMessage): string {
  return `"digest":${JSON.stringify(stored.digest)},"createdAtMs":${JSON.stringify(stored.createdAtMs)}`;
}

export function seqOf(entry: string): number {
  return Number(entry.slice(0, entry.indexOf(':')));
}

/** An entry's seq and tokens, read from its prefix without decoding the JSON. */
export function figuresOf(entry: string): { seq: number; tokens: number } {
  const afterSeq = entry.indexOf(':');
  return { seq: Number(entry.slice(0, afterSeq)), tokens: Number(entry.slice(afterSeq + 1, entry.indexOf(':', afterSeq + 1))) };
}

/** The scripts read these figures as digits: only non-negative integers fit. */
export function requireCount(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`RedisStore: ${name} must be a non-negative integer, got ${String(value)}`);
  }
}
