// Cache mode's scripts, for warming and the outbox flusher: WARM seeds a
// conversation Redis does not hold from MongoDB's state, UNFLUSHED reads what
// MongoDB does not have yet, REBASE replaces an unmerged conversation by
// MongoDB's state, DEMOTE retires a copy whose history went apart from
// MongoDB's, MARK_FLUSHED records what MongoDB has, CLAIM_DIRTY leases
// dirty conversations to a flusher. All but CLAIM_DIRTY start with the prelude
// of lua-helpers.ts; the rules they keep are in scripts.ts.

import { HELPERS } from './lua-helpers.js';

/**
 * ARGV: ttlMs, lastSeq, lastCum, summaryJson ('' for none), coversSeq, newInc, then entries oldest first.
 * Returns 1 when the conversation was seeded, 0 when Redis already held it.
 */
export const WARM = `${HELPERS}
if redis.call('EXISTS', meta) == 1 then return 0 end
redis.call('DEL', msgs, turns)
redis.call('HSET', meta, 'lastSeq', ARGV[2], 'lastCum', ARGV[3], 'flushedSeq', ARGV[2], 'inc', ARGV[6])
if ARGV[4] ~= '' then redis.call('HSET', meta, 'summary', ARGV[4], 'coversSeq', ARGV[5]) end
for i = 7, #ARGV do redis.call('RPUSH', msgs, ARGV[i]) end
touch('c', ARGV[1], 0, 0)
return 1
`;

/**
 * No ARGV. Returns {flushedSeq, summaryJson|nil, inc if unmerged|nil, entries with seq > flushedSeq newest first...};
 * {0, nil, nil} when not held.
 */
export const UNFLUSHED = `${HELPERS}
if redis.call('EXISTS', meta) == 0 then return {0, false, false} end
local state = redis.call('HMGET', meta, 'flushedSeq', 'summary', 'unmerged', 'inc')
local flushedSeq = tonumber(state[1] or '0')
local reply = {flushedSeq, state[2] or false, state[3] == '1' and state[4] or false}
local len, offset, chunk, done = redis.call('LLEN', msgs), 0, 16, false
while not done and offset < len do
  local size = math.min(chunk, len - offset)
  local part = redis.call('LRANGE', msgs, -(offset + size), -(offset + 1))
  for i = #part, 1, -1 do
    if seqOf(part[i]) <= flushedSeq then done = true break end
    reply[#reply + 1] = part[i]
  end
  offset = offset + size
  chunk = math.min(chunk * 2, 512)
end
return reply
`;

/**
 * ARGV: ttlMs, expectedInc, expectedLastSeq, turnKeyCount, then turnKeyCount pairs (turnKey, `<firstSeq>:<count>`),
 * then WARM's: lastSeq, lastCum, summaryJson ('' for none), coversSeq, newInc, entries oldest first.
 * The end of an unmerged conversation, once the flusher has appended its turns to MongoDB: the
 * conversation becomes what WARM would seed from MongoDB's state (a new incarnation, everything
 * flushed), with the turn keys of the merged turns at their MongoDB seqs. Only if it is still the
 * unmerged incarnation expectedInc with expectedLastSeq its last seq: a turn appended since the
 * merge read it would be lost. Returns 1 when rebased, -1 when it holds newer turns (merge them
 * and try again), 0 when it is gone or no longer that unmerged incarnation (merged by another
 * instance, erased). The dirty set is left to markFlushed, which the flusher calls next.
 */
export const REBASE = `${HELPERS}
if redis.call('EXISTS', meta) == 0 then return 0 end
local state = redis.call('HMGET', meta, 'unmerged', 'inc', 'lastSeq')
if state[1] ~= '1' or state[2] ~= ARGV[2] then return 0 end
if tonumber(state[3] or '0') ~= tonumber(ARGV[3]) then return -1 end
redis.call('DEL', meta, msgs, turns)
local w = 5 + 2 * tonumber(ARGV[4])
redis.call('HSET', meta, 'lastSeq', ARGV[w], 'lastCum', ARGV[w + 1], 'flushedSeq', ARGV[w], 'inc', ARGV[w + 4])
if ARGV[w + 2] ~= '' then redis.call('HSET', meta, 'summary', ARGV[w + 2], 'coversSeq', ARGV[w + 3]) end
for i = w + 5, #ARGV do redis.call('RPUSH', msgs, ARGV[i]) end
for i = 5, w - 1, 2 do redis.call('HSET', turns, ARGV[i], ARGV[i + 1]) end
touch('c', ARGV[1], 0, 0, true)
return 1
`;

/**
 * ARGV: newInc. For a copy whose history went apart from MongoDB's (turns reached MongoDB while
 * Redis did not answer): with nothing above flushedSeq it is dropped (the next miss warms it from
 * MongoDB); else it becomes unmerged under a new incarnation (every process's decoded window of it
 * is stale), so the flusher appends its turns after MongoDB's history and REBASE replaces it.
 * Returns 0 when not held, 1 when dropped, 2 when unmerged (now or already).
 */
export const DEMOTE = `${HELPERS}
if redis.call('EXISTS', meta) == 0 then return 0 end
local state = redis.call('HMGET', meta, 'lastSeq', 'flushedSeq', 'unmerged')
if state[3] == '1' then return 2 end
if tonumber(state[1] or '0') <= tonumber(state[2] or '0') then
  redis.call('DEL', meta, msgs, turns)
  return 1
end
redis.call('HSET', meta, 'unmerged', '1', 'inc', ARGV[1])
redis.call('EXISTS', meta, msgs)
return 2
`;

/**
 * ARGV: ttlMs, cap, seq, dirtyMember. Returns {-1} when not held, else {1, length} when every
 * message is now flushed (the TTL is back), {0, length} when newer messages still wait; length
 * is the list's after the cap's trim. With KEYS[4] (the dirty set, standalone Redis only) the
 * script also updates the dirty set: removed at -1 and 1, due now at 0. Ends with a read of
 * meta and msgs, as touch does, so that a caller tracking them goes on tracking them.
 */
export const MARK_FLUSHED = `${HELPERS}
local ttlMs, cap, seq = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
if redis.call('EXISTS', meta) == 0 then
  if KEYS[4] then redis.call('ZREM', KEYS[4], ARGV[4]) end
  return {-1}
end
local state = redis.call('HMGET', meta, 'lastSeq', 'flushedSeq', 'unmerged')
local lastSeq, flushedSeq = tonumber(state[1] or '0'), tonumber(state[2] or '0')
-- Never past lastSeq: a seq above it belongs to no message Redis has. An
-- unmerged conversation's seqs are provisional: only REBASE ends that state.
local target = math.min(math.max(flushedSeq, math.floor(seq)), lastSeq)
if state[3] == '1' then target = flushedSeq end
-- Seqs above target that the list does not hold were erased (an unflushed
-- message is never trimmed): nothing MongoDB still needs, so they count as flushed.
if state[3] ~= '1' and target < lastSeq then
  local newest = redis.call('LINDEX', msgs, -1)
  if not newest or seqOf(newest) <= target then target = lastSeq end
end
if target > flushedSeq then redis.call('HSET', meta, 'flushedSeq', fmt(target)) end
applyCap('c', cap, target)
local outcome = 1
if target < lastSeq then
  outcome = 0
  -- Standalone Redis: still dirty, due now, in the same script.
  if KEYS[4] then redis.call('ZADD', KEYS[4], 0, ARGV[4]) end
else
  if redis.call('PTTL', meta) < 0 then setTtl('c', ttlMs, lastSeq, target) end
  if KEYS[4] then redis.call('ZREM', KEYS[4], ARGV[4]) end
end
redis.call('EXISTS', meta)
return {outcome, redis.call('LLEN', msgs)}
`;

/** KEYS: dirty. ARGV: limit, nowMs, leaseUntilMs. Returns the claimed members. */
export const CLAIM_DIRTY = `
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, ARGV[1])
for _, member in ipairs(due) do redis.call('ZADD', KEYS[1], ARGV[3], member) end
return due
`;
