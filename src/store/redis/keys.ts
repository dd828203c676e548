// The Redis key layout (docs/storage.md, "Redis layout"). Per conversation,
// three keys sharing one hash tag, so that a conversation's keys and its Lua
// scripts live on one Cluster slot:
//   <prefix>{<tenant>:<conversation>}:meta   HASH  lastSeq, lastCum (running token total through lastSeq),
//                                                  flushedSeq (cache mode: highest seq MongoDB has),
//                                                  summary (JSON), coversSeq (the summary's, for the scripts),
//                                                  inc (this incarnation's id, set when meta is created),
//                                                  unmerged ('1': cache mode, taken while MongoDB could not
//                                                  tell its state; seqs provisional until REBASE),
//                                                  activeAt (ms of the last append, for the listing; absent
//                                                  when written before it was, or seeded by WARM/REBASE)
//   <prefix>{<tenant>:<conversation>}:msgs   LIST  one entry per message, oldest first (entry-codec.ts)
//   <prefix>{<tenant>:<conversation>}:turns  HASH  recent turn keys → `<firstSeq>:<count>` (RECENT_TURN_KEY_LIMIT)
//   <prefix>{<tenant>:<conversation>}:lock   STRING the summary lock, and :fence its token counter (summary-lock.ts)
// and one global key, `<prefix>dirty`, the dirty set (flush-source.ts), whose
// members are the hash tags' text. Redis holds a conversation exactly when its
// meta key exists.
//
// In the tag, '%', '{' and '}' are percent-escaped in both ids and ':' in the
// tenant, so the first ':' separates the two, no pair of ids can spell
// another's keys, and no id can close the tag early. Real ids need no escaping
// (tenants never contain ':'), so keys read `contextd:{t.acme:chat-42}:msgs`.

import type { Cluster, Redis } from 'ioredis';
import type { ConversationId, ConversationKey, TenantId } from '../../domain.js';

export const DEFAULT_KEY_PREFIX = 'contextd:';

/** A conversation's keys, in the order every conversation script takes them. */
export type ConversationKeys = [meta: string, msgs: string, turns: string];

/** The hash tag's text (without the braces); also the conversation's member of the dirty set. */
export function hashTag(key: ConversationKey): string {
  return `${escapeId(key.tenant, /[%{}:]/g)}:${escapeId(key.conversation, /[%{}]/g)}`;
}

/** The conversation a hash tag names; undefined for text hashTag never writes. */
export function parseHashTag(tag: string): ConversationKey | undefined {
  const colon = tag.indexOf(':');
  if (colon <= 0 || /[{}]/.test(tag)) return undefined;
  try {
    return {
      tenant: decodeURIComponent(tag.slice(0, colon)) as TenantId,
      conversation: decodeURIComponent(tag.slice(colon + 1)) as ConversationId,
    };
  } catch {
    return undefined;
  }
}

/** Everything before a key's name: `<prefix>{<tag>}`. */
export function tagBase(prefix: string, tag: string): string {
  return `${prefix}{${tag}}`;
}

export function conversationKeys(prefix: string, tag: string): ConversationKeys {
  const base = tagBase(prefix, tag);
  return [`${base}:meta`, `${base}:msgs`, `${base}:turns`];
}

export function dirtySetKey(prefix: string): string {
  return `${prefix}dirty`;
}

/** The keys a window is read from, as they end: an invalidation of either untracks the window. */
const WINDOW_KEY_SUFFIXES = ['}:meta', '}:msgs'] as const;

/** The hash tag of a conversation's meta or msgs key; undefined for any other key. */
export function windowKeyTag(prefix: string, key: string): string | undefined {
  const suffix = WINDOW_KEY_SUFFIXES.find((each) => key.endsWith(each));
  if (suffix === undefined || !key.startsWith(`${prefix}{`)) return undefined;
  return key.slice(prefix.length + 1, -suffix.length);
}

/** The SCAN pattern that matches every conversation's meta key. */
export function metaKeyPattern(prefix: string): string {
  return `${escapeGlob(prefix)}{*}:meta`;
}

/** The SCAN pattern that matches the meta keys of one tenant's conversations (the tenant's escaping ends at the tag's first ':'). */
export function tenantMetaKeyPattern(prefix: string, tenant: string): string {
  return `${escapeGlob(prefix)}{${escapeGlob(escapeId(tenant, /[%{}:]/g))}:*}:meta`;
}

/** The hash tag of a key metaKeyPattern matched. */
export function metaKeyTag(prefix: string, metaKey: string): string {
  return metaKey.slice(prefix.length + 1, -'}:meta'.length);
}

/** On a Cluster, keys of different hash tags (and the dirty set) may live on different nodes. */
export function isCluster(client: Redis | Cluster): client is Cluster {
  return (client as { isCluster?: boolean }).isCluster === true;
}

function escapeId(id: string, special: RegExp): string {
  return id.replace(special, (char) => `%${char.charCodeAt(0).toString(16).toUpperCase()}`);
}

function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, (char) => `\\${char}`);
}
