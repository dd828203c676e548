// The request path's reads: LOAD answers a load with the window (leaving out
// what the client has decoded already), LIST pages through what Redis holds.
// Both start with the prelude of lua-helpers.ts; the rules they keep are in
// scripts.ts.

import { HELPERS } from './lua-helpers.js';

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
export const LOAD = `${HELPERS}
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
export const LIST = `${HELPERS}
local mode, ttlMs, afterSeq, limit = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
if redis.call('EXISTS', meta) == 0 or limit <= 0 then return {} end
local state = redis.call('HMGET', meta, 'lastSeq', 'flushedSeq')
touch(mode, ttlMs, tonumber(state[1] or '0'), tonumber(state[2] or '0'))
local start = countThrough(afterSeq)
return redis.call('LRANGE', msgs, start, start + limit - 1)
`;
