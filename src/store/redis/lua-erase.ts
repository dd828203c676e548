// ERASE: messages taken out of a conversation (the conversation API's
// DELETE …/messages/:seq; docs/storage.md, "Erasing messages"). Starts with
// the prelude of lua-helpers.ts; the rules it keeps are in scripts.ts.
//
// The list is left with a gap where the erased entries were: LOAD, LIST,
// UNFLUSHED and the cap already take a list whose seqs are not contiguous (a
// WARM from MongoDB can leave one), and lastSeq stays, so no seq is given
// twice. The running totals after the first erased entry are written again
// without the erased tokens, so that cumTokens stays the running total of what
// the list holds (LOAD's binary search, and what the flusher gives MongoDB).
// Entries change at seqs that keep their number, which an incarnation rules
// out (scripts.ts), so the conversation gets a new one: every process's
// decoded window of it is stale.

import { HELPERS } from './lua-helpers.js';

/**
 * ARGV: mode, ttlMs, newInc, then the seqs to erase, ascending.
 * Returns {0} when the conversation is not held, {-1} when it is unmerged (its seqs are provisional: nothing is
 * changed), else {1, entries removed, 1 when the summary was dropped (it covered the smallest seq) else 0, then per
 * removed entry its seq and the running total there once the erasure is done}.
 * In cache mode, when no entry above flushedSeq is left, flushedSeq becomes lastSeq (the erased ones are none
 * MongoDB still needs) and the conversation gets its TTL back.
 */
export const ERASE = `${HELPERS}
local mode, ttlMs, newInc = ARGV[1], ARGV[2], ARGV[3]
if redis.call('EXISTS', meta) == 0 then return {0} end
local state = redis.call('HMGET', meta, 'lastSeq', 'lastCum', 'flushedSeq', 'coversSeq', 'unmerged')
if state[5] == '1' then return {-1} end
local lastSeq, lastCum, flushedSeq = tonumber(state[1] or '0'), tonumber(state[2] or '0'), tonumber(state[3] or '0')
local minSeq = tonumber(ARGV[4])
local erased = {}
for i = 4, #ARGV do erased[tonumber(ARGV[i])] = true end

-- The entries before the first erased seq stay as they are; from there on the
-- list is read once and written back without the erased entries.
local from = countThrough(minSeq - 1)
local tail = redis.call('LRANGE', msgs, from, -1)
local kept, positions, removed, removedTokens = {}, {}, 0, 0
for i = 1, #tail do
  local seqText, tokensText, cumText, body = string.match(tail[i], '^(%d+):(%d+):(%d+):(.*)$')
  if erased[tonumber(seqText)] then
    removed = removed + 1
    removedTokens = removedTokens + tonumber(tokensText)
    positions[#positions + 1] = seqText
    positions[#positions + 1] = fmt(tonumber(cumText) - removedTokens)
  elseif removed == 0 then
    kept[#kept + 1] = tail[i]
  else
    kept[#kept + 1] = seqText .. ':' .. tokensText .. ':' .. fmt(tonumber(cumText) - removedTokens) .. ':' .. body
  end
end

local isSummaryDropped = state[4] and tonumber(state[4]) >= minSeq
if isSummaryDropped then redis.call('HDEL', meta, 'summary', 'coversSeq') end
if removed > 0 then
  if from == 0 then redis.call('DEL', msgs) else redis.call('LTRIM', msgs, 0, from - 1) end
  for at = 1, #kept, 1000 do redis.call('RPUSH', msgs, unpack(kept, at, math.min(at + 999, #kept))) end
  redis.call('HSET', meta, 'lastCum', fmt(lastCum - removedTokens), 'inc', newInc)
  if mode == 'c' and lastSeq > flushedSeq then
    local newest = redis.call('LINDEX', msgs, -1)
    if not newest or seqOf(newest) <= flushedSeq then
      flushedSeq = lastSeq
      redis.call('HSET', meta, 'flushedSeq', fmt(lastSeq))
    end
  end
end
touch(mode, ttlMs, lastSeq, flushedSeq, removed > 0)
local reply = {1, removed, isSummaryDropped and 1 or 0}
for i = 1, #positions do reply[#reply + 1] = positions[i] end
return reply
`;
