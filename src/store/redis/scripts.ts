// The Lua that makes each RedisStore operation on one conversation atomic:
// the commands the store calls (REDIS_SCRIPTS, defineScripts) and the rules
// every script keeps. The sources live by job: lua-helpers.ts (the prelude
// they share), lua-turns.ts (APPEND, REPLACE_SUMMARY), lua-reads.ts (LOAD,
// LIST) and lua-outbox.ts (cache mode's WARM, UNFLUSHED, REBASE, MARK_FLUSHED,
// CLAIM_DIRTY). The layout they work on is in keys.ts (and docs/storage.md,
// "Redis layout"). Every conversation script takes KEYS = meta, msgs, turns
// (one hash tag, so one Cluster slot); only claimDirty touches the global
// dirty set.
//
// A list entry is `<seq>:<tokens>:<cumTokens>:<json>`: the scripts read the
// figures with one string.match and never decode the JSON (Redis's cjson would
// round large numbers and reorder keys; the JSON is the client's, byte for byte).
// Seqs are ascending along the list and, as written by RedisStore, contiguous:
// the list only ever grows at the tail and is trimmed at the head. cumTokens
// never decreases along the list, and where seqs are contiguous each entry's
// cumTokens is the previous one's plus its tokens. WARM seeds the list from
// MongoDB, which may have gaps; such a list stays non-contiguous until the gap
// is trimmed away, and there the cumTokens step may exceed the entry's tokens.
// ERASE (lua-erase.ts) leaves a gap too, where each entry's cumTokens is still
// the previous one's plus its tokens (an erased message counts for nothing).
//
// Cost: every script is O(log n) in the length of the conversation apart from
// what it returns or removes (LINDEX seeks from the nearer end). The position
// of a seq is arithmetic where the list is contiguous (seq(tail) - seq(head) + 1
// == LLEN), a binary search by LINDEX otherwise. LOAD takes the window's first
// position as the largest of three bounds: after the summary, among the newest
// maxMessages, and where the newer messages' tokens fit maxTokens (a binary
// search on cumTokens). It then LRANGEs only the parts of the window the client
// does not hold. Where the newest maxMessages are not contiguous it walks back
// from the tail instead, summing tokens, as far as the window: O(window).
// Trims remove each entry once, and the turns hash is cut back once per
// RECENT_TURN_KEY_LIMIT keyed appends.
//
// Incarnations. meta's `inc` names one life of the conversation in Redis: it is
// set when a script creates meta (APPEND in standalone mode or unmerged, WARM,
// REBASE) from an id the client passes (unique per call; Lua has no randomness
// of its own). Within one incarnation the entry at a seq never changes: appends
// push new seqs, trims and summaries drop from the head, WARM only runs when
// meta does not exist, REBASE and ERASE change entries under a new
// incarnation and delete removes meta. Whether a conversation is unmerged is
// fixed for an incarnation too (only REBASE ends it). So a client that decoded
// the entries of seqs [from, through] under inc X may tell LOAD so, and LOAD
// leaves those out.
// One case breaks the rule without a new incarnation: a failover to a replica
// (or a restart from a snapshot) that missed the last writes lets new appends
// reuse seqs. LOAD therefore trusts the client's range only if the entry Redis
// holds at `through` still carries the digest and createdAtMs the client has
// for it, and the summary only if coversSeq and its byte length match.
//
// TTL. Every script that uses a conversation ends by touching all three keys
// together, after its writes, so meta's TTL speaks for the other two; only
// APPEND creates msgs or turns (with no TTL) while meta exists, and says so.
// That lets touch skip its three PEXPIREs (one PTTL instead) when meta was
// refreshed within the last ttl/100, and its PERSISTs when meta has no TTL.

import type { Cluster, Redis } from 'ioredis';
import { APPEND, REPLACE_SUMMARY } from './lua-turns.js';
import { LIST, LOAD } from './lua-reads.js';
import { CLAIM_DIRTY, DEMOTE, MARK_FLUSHED, REBASE, UNFLUSHED, WARM } from './lua-outbox.js';
import { ERASE } from './lua-erase.js';

export { RECENT_TURN_KEY_LIMIT } from './lua-turns.js';

/** Command names given to ioredis's defineCommand (EVALSHA, falling back to EVAL on NOSCRIPT). */
export const REDIS_SCRIPTS = {
  contextdAppend: { lua: APPEND, numberOfKeys: 3 },
  // The same scripts with the dirty set as KEYS[4], on standalone Redis (on a Cluster it lives in another slot).
  contextdAppendMarking: { lua: APPEND, numberOfKeys: 4 },
  contextdMarkFlushedMarking: { lua: MARK_FLUSHED, numberOfKeys: 4 },
  contextdLoad: { lua: LOAD, numberOfKeys: 3 },
  contextdList: { lua: LIST, numberOfKeys: 3 },
  contextdReplaceSummary: { lua: REPLACE_SUMMARY, numberOfKeys: 3 },
  contextdErase: { lua: ERASE, numberOfKeys: 3 },
  contextdWarm: { lua: WARM, numberOfKeys: 3 },
  contextdRebase: { lua: REBASE, numberOfKeys: 3 },
  contextdDemote: { lua: DEMOTE, numberOfKeys: 3 },
  contextdUnflushed: { lua: UNFLUSHED, numberOfKeys: 3 },
  contextdMarkFlushed: { lua: MARK_FLUSHED, numberOfKeys: 3 },
  contextdClaimDirty: { lua: CLAIM_DIRTY, numberOfKeys: 1 },
} as const;

export type RedisScriptName = keyof typeof REDIS_SCRIPTS;

export type ScriptArg = string | number;
export type ScriptCommands = Record<RedisScriptName, (...args: ScriptArg[]) => Promise<unknown>>;

/** Defines the scripts on `client` and returns it typed as their commands. Defining a command again (another store on the same client) replaces it with the same script. */
export function defineScripts(client: Redis | Cluster): ScriptCommands {
  for (const [name, definition] of Object.entries(REDIS_SCRIPTS)) client.defineCommand(name, definition);
  return client as unknown as ScriptCommands;
}

/** A limit as a script argument: a non-negative integer no larger than a double counts exactly. */
export function clampCount(value: number): number {
  if (Number.isNaN(value)) return 0;
  return Math.max(0, Math.min(Math.floor(value), Number.MAX_SAFE_INTEGER));
}
