// The prelude every conversation script starts with (scripts.ts holds the
// layout and the rules the scripts keep): the three keys, reading an entry's
// seq, finding and dropping entries by seq, the max_cached_messages cap, and
// touch, with which every script that uses a conversation ends.

// mode is 's' (standalone) or 'c' (cache). In cache mode a conversation with
// messages not yet in MongoDB (lastSeq > flushedSeq) has no TTL, so that an
// outage of MongoDB longer than the TTL loses no acknowledged turn (and a
// volatile-* maxmemory policy cannot evict it); markFlushed gives the TTL back.
export const HELPERS = `
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
