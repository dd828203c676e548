// The request path's writes: APPEND stores a turn (deduplicated by its turn
// key), REPLACE_SUMMARY stores a summary and drops what it covers. Both start
// with the prelude of lua-helpers.ts; the rules they keep are in scripts.ts.

import { HELPERS } from './lua-helpers.js';

/**
 * How many recent turn keys a conversation is sure to remember for
 * deduplicating retried appends (as the embedded store). Up to twice as many
 * are remembered: the turns hash grows to 2 × this and is then cut back to the
 * newest this many in one pass, one HGETALL per this many keyed appends
 * instead of one per append.
 */
export const RECENT_TURN_KEY_LIMIT = 64;

/**
 * ARGV: mode, ttlMs, cap, hasTurnKey ('0'|'1'), turnKey, newInc, nowMs, dirtyMember, ifCold, then per message: tokens, json.
 * ifCold (cache mode): 'u' takes a conversation Redis does not hold as unmerged (MongoDB's state unknown: seqs
 * provisional from 1, until the flusher merges it and REBASE replaces it); anything else refuses it ({'cold'}).
 * With KEYS[4] (the dirty set, standalone Redis only) a stored turn also marks the conversation dirty (ZADD NX nowMs).
 * A stored turn sets meta's activeAt to nowMs (the turn's createdAtMs): the listing's order, one more field of an HSET made anyway.
 * Returns {'cold'} | {'duplicate', firstSeq, count} | {'ok', firstSeq, count, inc, cumTokens of the last message,
 * the list's length after the append and its cap}.
 */
export const APPEND = `${HELPERS}
local mode, ttlMs, cap = ARGV[1], ARGV[2], tonumber(ARGV[3])
local hasTurnKey, turnKey = ARGV[4] == '1', ARGV[5]
if redis.call('EXISTS', meta) == 0 then
  if mode == 'c' and ARGV[9] ~= 'u' then return {'cold'} end
  -- Leftovers of an expired conversation must not mix with the new one.
  redis.call('DEL', msgs, turns)
  if mode == 'c' then redis.call('HSET', meta, 'unmerged', '1') end
end
local state = redis.call('HMGET', meta, 'lastSeq', 'lastCum', 'flushedSeq', 'inc')
local flushedSeq = tonumber(state[3] or '0')
if hasTurnKey then
  local earlier = redis.call('HGET', turns, turnKey)
  if earlier then
    local firstSeq, count = string.match(earlier, '^(%d+):(%d+)$')
    touch(mode, ttlMs, tonumber(state[1] or '0'), flushedSeq, false)
    return {'duplicate', tonumber(firstSeq), tonumber(count)}
  end
end
-- A new conversation starts an incarnation; so does the first append to one
-- whose meta an older contextd wrote (nobody can have cached it without one).
local inc = state[4]
if not inc then
  inc = ARGV[6]
  redis.call('HSET', meta, 'inc', inc)
end
local count = (#ARGV - 9) / 2
local firstSeq = tonumber(state[1] or '0') + 1
local lastSeq = firstSeq + count - 1
local cum = tonumber(state[2] or '0')
local entries = {}
for i = 0, count - 1 do
  local tokens = ARGV[10 + 2 * i]
  cum = cum + tonumber(tokens)
  entries[i + 1] = fmt(firstSeq + i) .. ':' .. tokens .. ':' .. fmt(cum) .. ':' .. ARGV[11 + 2 * i]
end
-- One RPUSH per turn (in slices: unpack's arguments live on Lua's C stack).
local len
for from = 1, count, 1000 do len = redis.call('RPUSH', msgs, unpack(entries, from, math.min(from + 999, count))) end
local hasNewKey = len == count
redis.call('HSET', meta, 'lastSeq', fmt(lastSeq), 'lastCum', fmt(cum), 'activeAt', ARGV[7])
if hasTurnKey then
  local held = redis.call('HLEN', turns)
  if held == 0 then hasNewKey = true end
  -- Amortised: at ${2 * RECENT_TURN_KEY_LIMIT} keys, keep the newest ${RECENT_TURN_KEY_LIMIT - 1} and add this one.
  -- Cut before the HSET, so the hash never passes ${2 * RECENT_TURN_KEY_LIMIT} fields
  -- (beyond hash-max-listpack-entries, 128 by default, it would turn into a hashtable for good).
  if held >= ${2 * RECENT_TURN_KEY_LIMIT} then
    local all = redis.call('HGETALL', turns)
    local byAge = {}
    for i = 1, #all, 2 do byAge[#byAge + 1] = {tonumber(string.match(all[i + 1], '^(%d+):')), all[i]} end
    table.sort(byAge, function(a, b) return a[1] < b[1] end)
    local stale = {}
    for i = 1, #byAge - (${RECENT_TURN_KEY_LIMIT} - 1) do stale[i] = byAge[i][2] end
    redis.call('HDEL', turns, unpack(stale))
  end
  redis.call('HSET', turns, turnKey, fmt(firstSeq) .. ':' .. fmt(count))
end
applyCap(mode, cap, flushedSeq, len)
touch(mode, ttlMs, lastSeq, flushedSeq, hasNewKey)
-- Standalone Redis: the dirty mark in the same script (NX keeps a flusher's lease).
if KEYS[4] and mode == 'c' then redis.call('ZADD', KEYS[4], 'NX', ARGV[7], ARGV[8]) end
return {'ok', firstSeq, count, inc, cum, redis.call('LLEN', msgs)}
`;

/** ARGV: mode, ttlMs, coversSeq, summaryJson. Returns 1 when stored, 0 when ignored. */
export const REPLACE_SUMMARY = `${HELPERS}
local mode, ttlMs, coversSeq = ARGV[1], ARGV[2], tonumber(ARGV[3])
if redis.call('EXISTS', meta) == 0 then return 0 end
local state = redis.call('HMGET', meta, 'lastSeq', 'flushedSeq', 'coversSeq', 'unmerged')
local lastSeq, flushedSeq = tonumber(state[1] or '0'), tonumber(state[2] or '0')
-- An unmerged conversation's seqs are provisional: a summary of them would cover other messages once merged.
if state[4] == '1' then return 0 end
if coversSeq <= tonumber(state[3] or '0') or coversSeq > lastSeq then return 0 end
redis.call('HSET', meta, 'summary', ARGV[4], 'coversSeq', ARGV[3])
-- Covered messages are never loaded again; in cache mode they stay until MongoDB has them.
if mode == 'c' then dropThrough(math.min(coversSeq, flushedSeq)) else dropThrough(coversSeq) end
touch(mode, ttlMs, lastSeq, flushedSeq)
return 1
`;
