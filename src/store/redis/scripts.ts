// The Lua that makes each RedisStore operation on one conversation atomic, and
// how the store calls it. The layout they work on is in keys.ts (and
// docs/storage.md, "Redis layout"). Every conversation script takes KEYS =
// meta, msgs, turns (one hash tag, so one Cluster slot); only claimDirty
// touches the global dirty set.
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
// meta does not exist, REBASE replaces the whole conversation under a new
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

/**
 * How many recent turn keys a conversation is sure to remember for
 * deduplicating retried appends (as the embedded store). Up to twice as many
 * are remembered: the turns hash grows to 2 × this and is then cut back to the
 * newest this many in one pass, one HGETALL per this many keyed appends
 * instead of one per append.
 */
export const RECENT_TURN_KEY_LIMIT = 64;

// mode is 's' (standalone) or 'c' (cache). In cache mode a conversation with
// messages not yet in MongoDB (lastSeq > flushedSeq) has no TTL, so that an
// outage of MongoDB longer than the TTL loses no acknowledged turn (and a
// volatile-* maxmemory policy cannot evict it); markFlushed gives the TTL back.
const HELPERS = `
local meta, msgs, turns = KEYS[1], KEYS[2], KEYS[3]

local function seqOf(entry)
  return tonumber(string.match(entry, '^(%d+):'))
end

local function fmt(n)
  return string.format('%d', n)
end

-- How many entries at the head of the list have seq <= s.
local function countThrough(s)
  s = math.floor(s)
  local len = redis.call('LLEN', msgs)
  if len == 0 then return 0 end
  local head = seqOf(redis.call('LINDEX', msgs, 0))
  if head > s then return 0 end
  local tail = seqOf(redis.call('LINDEX', msgs, -1))
  if tail <= s then return len end
  if tail - head + 1 == len then return s - head + 1 end
  -- Not contiguous (never written so by RedisStore): binary search, entry 0 <= s < entry len-1.
  local lo, hi = 1, len - 1
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if seqOf(redis.call('LINDEX', msgs, mid)) <= s then lo = mid + 1 else hi = mid end
  end
  return lo
end

local function dropThrough(s)
  local n = countThrough(s)
  if n > 0 then redis.call('LTRIM', msgs, n, -1) end
end

-- The max_cached_messages cap; in cache mode it never drops a message MongoDB does not have yet.
local function applyCap(mode, cap, flushedSeq, len)
  local excess = (len or redis.call('LLEN', msgs)) - cap
  if excess <= 0 then return end
  if mode == 'c' then excess = math.min(excess, countThrough(flushedSeq)) end
  if excess > 0 then redis.call('LTRIM', msgs, excess, -1) end
end

local function setTtl(mode, ttlMs, lastSeq, flushedSeq, hasNewKey)
  local metaTtlMs = redis.call('PTTL', meta)
  if mode == 'c' and lastSeq > flushedSeq then
    -- A key created since the last PERSIST has no TTL either.
    if metaTtlMs == -1 then return end
    for i = 1, 3 do redis.call('PERSIST', KEYS[i]) end
    return
  end
  if not hasNewKey and metaTtlMs > tonumber(ttlMs) * 0.99 then return end
  for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ttlMs) end
end

-- Called last, after the script's writes, on a conversation whose meta exists.
-- hasNewKey: this script created msgs or turns, which has no TTL yet.
-- Ends with a read of meta and msgs: a write stops Redis tracking a key for
-- every client (CLIENT TRACKING, see redis-tracking.ts), the writer's own
-- connection included, and a read makes it track the key again, so the
-- caller goes on hearing of other clients' writes after its own.
local function touch(mode, ttlMs, lastSeq, flushedSeq, hasNewKey)
  setTtl(mode, ttlMs, lastSeq, flushedSeq, hasNewKey)
  redis.call('EXISTS', meta, msgs)
end
`;

/**
 * ARGV: mode, ttlMs, cap, hasTurnKey ('0'|'1'), turnKey, newInc, nowMs, dirtyMember, ifCold, then per message: tokens, json.
 * ifCold (cache mode): 'u' takes a conversation Redis does not hold as unmerged (MongoDB's state unknown: seqs
 * provisional from 1, until the flusher merges it and REBASE replaces it); anything else refuses it ({'cold'}).
 * With KEYS[4] (the dirty set, standalone Redis only) a stored turn also marks the conversation dirty (ZADD NX nowMs).
 * Returns {'cold'} | {'duplicate', firstSeq, count} | {'ok', firstSeq, count, inc, cumTokens of the last message,
 * the list's length after the append and its cap}.
 */
const APPEND = `${HELPERS}
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
redis.call('HSET', meta, 'lastSeq', fmt(lastSeq), 'lastCum', fmt(cum))
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

/**
 * ARGV: mode, ttlMs, maxMessages, maxTokens, newInc, then what the client has decoded already:
 * knownInc ('' for nothing), knownFrom, knownThrough, knownTag (the `"digest":…,"createdAtMs":…`
 * text of its entry at knownThrough), knownCoversSeq ('' for no summary), knownSummaryBytes.
 * Returns {0} when the conversation is not held, else {1 (2 when it is unmerged, see APPEND),
 * lastSeq, inc, summaryJson | nil (none) | 0 (the client's is current), heldFrom, heldThrough, heldCount,
 * the list's length, entries oldest first...}: the window is the entries with seq < heldFrom, then the heldCount entries the
 * client holds with seqs in [heldFrom, heldThrough] (all of its seqs there, when heldCount > 0), then the
 * entries with seq > heldThrough.
 *
 * The window is cut by the rule of src/context/window-cut.ts, which Lua cannot call, so LOAD
 * mirrors it (`takes` below; windowByArithmetic finds the same messages by position and
 * cumTokens); test/store/window-cut.property.test.ts holds the two equal. Newest first, a
 * message belongs while seq > coversSeq, fewer than maxMessages are taken and the newer ones'
 * tokens add up to at most maxTokens (so the one that crosses the budget comes too). The
 * client sends both limits through windowLimit: whole numbers a double holds exactly.
 */
const LOAD = `${HELPERS}
local mode, ttlMs, maxMessages, maxTokens = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local knownInc, knownFrom, knownThrough, knownTag = ARGV[6], tonumber(ARGV[7]), tonumber(ARGV[8]), ARGV[9]
if redis.call('EXISTS', meta) == 0 then return {0} end
local state = redis.call('HMGET', meta, 'lastSeq', 'flushedSeq', 'summary', 'coversSeq', 'inc', 'unmerged')
local lastSeq, flushedSeq = tonumber(state[1] or '0'), tonumber(state[2] or '0')
local coversSeq = tonumber(state[4] or '0')
local inc = state[5]
-- Meta written by an older contextd gets its incarnation at the first load, so
-- that long-lived conversations (whose TTL every load renews) benefit too.
if not inc then
  inc = ARGV[5]
  redis.call('HSET', meta, 'inc', inc)
end
local sameInc = knownInc ~= '' and knownInc == inc
local summary = state[3] or false
if summary and sameInc and tonumber(ARGV[10]) == coversSeq and tonumber(ARGV[11]) == #summary then summary = 0 end
local reply = {state[6] == '1' and 2 or 1, lastSeq, inc, summary, 1, 0, 0, 0}
local canTrust = sameInc and knownTag ~= ''

-- The window rule, as WindowWalk.takes in src/context/window-cut.ts (keep the two alike):
-- walking newest first, whether the next older message belongs; if it does, it is taken.
local taken, usedTokens = 0, 0
local function takes(seq, tokens)
  if seq <= coversSeq or taken >= maxMessages or usedTokens > maxTokens then return false end
  taken = taken + 1
  usedTokens = usedTokens + tokens
  return true
end

local function isKnownAt(entry)
  return string.find(entry, knownTag, 1, true) ~= nil
end

local function pushRange(from, to)
  if from > to then return end
  local part = redis.call('LRANGE', msgs, from, to)
  for i = 1, #part do reply[#reply + 1] = part[i] end
end

-- Entries read by LINDEX in this call, by position: each probe reads one entry once.
local probed = {}
local function entryAt(pos)
  local entry = probed[pos]
  if not entry then
    entry = redis.call('LINDEX', msgs, pos)
    probed[pos] = entry
  end
  return entry
end

local function cumAt(pos)
  return tonumber(string.match(entryAt(pos), '^%d+:%d+:(%d+):'))
end

-- The newest maxMessages, from position oldest (seq oldestSeq) on, are contiguous:
-- the position of seq s there is oldest + s - oldestSeq, and each cumTokens is the
-- previous one's plus its tokens. The messages takes() would take, found in
-- O(log n): each bound below is one of its three conditions.
local function windowByArithmetic(len, oldest, oldestSeq)
  local function positionOf(s) return oldest + s - oldestSeq end
  -- Among the newest maxMessages, and after the summary.
  local first = math.max(oldest, positionOf(coversSeq + 1))
  if first >= len then return end
  -- The newer messages add up to at most maxTokens, i.e. lastCum - cumTokens <= maxTokens:
  -- a suffix, since cumTokens never decreases, found by binary search. The tail is always in it.
  local atLeast = cumAt(len - 1) - maxTokens
  if cumAt(first) < atLeast then
    local lo, hi = first + 1, len - 1
    while lo < hi do
      local mid = math.floor((lo + hi) / 2)
      if cumAt(mid) >= atLeast then hi = mid else lo = mid + 1 end
    end
    first = lo
  end
  local firstSeq = oldestSeq + first - oldest
  local tailSeq = oldestSeq + len - 1 - oldest
  if canTrust and knownThrough >= firstSeq and knownThrough <= tailSeq and knownFrom <= knownThrough
    and isKnownAt(entryAt(positionOf(knownThrough))) then
    local heldFrom = math.max(knownFrom, firstSeq)
    reply[5], reply[6], reply[7] = heldFrom, knownThrough, knownThrough - heldFrom + 1
    pushRange(first, positionOf(heldFrom) - 1)
    pushRange(positionOf(knownThrough) + 1, len - 1)
  else
    pushRange(first, len - 1)
  end
end

-- The newest maxMessages have gaps (WARM from MongoDB can leave them; the cumTokens
-- across a gap count the missing messages): takes() over the entries newest first, in
-- growing chunks from the tail, so the work follows the window, not the list.
local function windowByWalk(len)
  -- The client's range is checked once, at the newest entry at or below knownThrough.
  local isChecked, isTrusted = not canTrust, false
  local newestFirst, heldFrom, heldCount = {}, 1, 0
  local offset, chunk = 0, 16
  local done = false
  while not done and offset < len and taken < maxMessages do
    local size = math.min(chunk, len - offset, maxMessages - taken)
    local part = redis.call('LRANGE', msgs, -(offset + size), -(offset + 1))
    for i = #part, 1, -1 do
      local entry = part[i]
      local seqText, tokens = string.match(entry, '^(%d+):(%d+):')
      local seq = tonumber(seqText)
      if not takes(seq, tonumber(tokens)) then done = true break end
      if not isChecked and seq <= knownThrough then
        isChecked = true
        isTrusted = seq == knownThrough and isKnownAt(entry)
      end
      if isTrusted and seq >= knownFrom then
        heldFrom, heldCount = seq, heldCount + 1
      else
        newestFirst[#newestFirst + 1] = entry
      end
    end
    offset = offset + size
    chunk = math.min(chunk * 2, 512)
  end
  if heldCount > 0 then reply[5], reply[6], reply[7] = heldFrom, knownThrough, heldCount end
  for i = #newestFirst, 1, -1 do reply[#reply + 1] = newestFirst[i] end
end

local len = redis.call('LLEN', msgs)
reply[8] = len
if len > 0 and maxMessages > 0 then
  -- Only the part of the list the window can reach needs to be contiguous: the newest maxMessages.
  local oldest = math.max(0, len - maxMessages)
  local oldestSeq = seqOf(entryAt(oldest))
  if seqOf(entryAt(len - 1)) - oldestSeq == len - 1 - oldest then windowByArithmetic(len, oldest, oldestSeq) else windowByWalk(len) end
end
touch(mode, ttlMs, lastSeq, flushedSeq, false)
return reply
`;

/** ARGV: mode, ttlMs, afterSeq, limit. Returns the entries, oldest first. */
const LIST = `${HELPERS}
local mode, ttlMs, afterSeq, limit = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
if redis.call('EXISTS', meta) == 0 or limit <= 0 then return {} end
local state = redis.call('HMGET', meta, 'lastSeq', 'flushedSeq')
touch(mode, ttlMs, tonumber(state[1] or '0'), tonumber(state[2] or '0'))
local start = countThrough(afterSeq)
return redis.call('LRANGE', msgs, start, start + limit - 1)
`;

/** ARGV: mode, ttlMs, coversSeq, summaryJson. Returns 1 when stored, 0 when ignored. */
const REPLACE_SUMMARY = `${HELPERS}
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

/**
 * ARGV: ttlMs, lastSeq, lastCum, summaryJson ('' for none), coversSeq, newInc, then entries oldest first.
 * Returns 1 when the conversation was seeded, 0 when Redis already held it.
 */
const WARM = `${HELPERS}
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
const UNFLUSHED = `${HELPERS}
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
const REBASE = `${HELPERS}
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
 * ARGV: ttlMs, cap, seq, dirtyMember. Returns {-1} when not held, else {1, length} when every
 * message is now flushed (the TTL is back), {0, length} when newer messages still wait; length
 * is the list's after the cap's trim. With KEYS[4] (the dirty set, standalone Redis only) the
 * script also updates the dirty set: removed at -1 and 1, due now at 0. Ends with a read of
 * meta and msgs, as touch does, so that a caller tracking them goes on tracking them.
 */
const MARK_FLUSHED = `${HELPERS}
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
const CLAIM_DIRTY = `
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, ARGV[1])
for _, member in ipairs(due) do redis.call('ZADD', KEYS[1], ARGV[3], member) end
return due
`;

/** Command names given to ioredis's defineCommand (EVALSHA, falling back to EVAL on NOSCRIPT). */
export const REDIS_SCRIPTS = {
  contextdAppend: { lua: APPEND, numberOfKeys: 3 },
  // The same scripts with the dirty set as KEYS[4], on standalone Redis (on a Cluster it lives in another slot).
  contextdAppendMarking: { lua: APPEND, numberOfKeys: 4 },
  contextdMarkFlushedMarking: { lua: MARK_FLUSHED, numberOfKeys: 4 },
  contextdLoad: { lua: LOAD, numberOfKeys: 3 },
  contextdList: { lua: LIST, numberOfKeys: 3 },
  contextdReplaceSummary: { lua: REPLACE_SUMMARY, numberOfKeys: 3 },
  contextdWarm: { lua: WARM, numberOfKeys: 3 },
  contextdRebase: { lua: REBASE, numberOfKeys: 3 },
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
