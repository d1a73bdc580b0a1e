-- Sliding-log query budget: at most LIMIT calls in any WINDOW_MS, per app id, on Redis TIME
-- (not an ARGV "now" like the other discovery scripts: one clock for every process and host that
-- shares the vendor's budget, so a host with a skewed clock cannot overspend it).
--
-- KEYS[1]  the budget log (ZSET). Members are "i:<token>" for a call in flight, scored with the
--          admission time, and "d:<token>" for a finished call, scored with the time it finished.
--          A finished call's score is an upper bound of the vendor's arrival time, so a slot
--          freed at score + WINDOW_MS can never let the vendor see LIMIT + 1 calls in a window.
-- ARGV[1]  mode: "acquire" | "complete" | "close"
-- ARGV[2]  LIMIT (calls per window, >= 1)
-- ARGV[3]  WINDOW_MS (the vendor's period plus our margin, integer ms)
-- ARGV[4]  RESERVE: acquire only when fewer than LIMIT - RESERVE slots are taken (0 .. LIMIT-1)
-- ARGV[5]  TOKEN: caller-made unique id (random), so members never collide in the same ms
-- ARGV[6]  GRACE_MS: an in-flight call whose caller died is forgotten WINDOW_MS + GRACE_MS after
--          admission (GRACE_MS >= the HTTP timeout, so a live call is never forgotten early)
--
-- Returns {admitted (1|0), wait_ms (integer, >= 1 when denied, else 0), slots_taken}.
--   acquire:  admits and logs "i:TOKEN" at now, or returns how long until a slot frees.
--   complete: turns "i:TOKEN" into "d:TOKEN" at now (re-adds it if it was already forgotten).
--   close:    the vendor answered 299: logs LIMIT finished calls at now, so nothing is admitted
--             for a whole window.
-- Lua numbers are doubles; every value returned is a whole number of milliseconds.

local key = KEYS[1]
local mode = ARGV[1]
local limit = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local reserve = tonumber(ARGV[4])
local token = ARGV[5]
local grace = tonumber(ARGV[6])

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = window + grace

-- Forget finished calls that left the window, and in-flight ones past their grace.
local old = redis.call('ZRANGEBYSCORE', key, '-inf', now - window, 'WITHSCORES')
for i = 1, #old, 2 do
  local member = old[i]
  if string.sub(member, 1, 2) == 'd:' or tonumber(old[i + 1]) <= now - ttl then
    redis.call('ZREM', key, member)
  end
end

if mode == 'complete' then
  redis.call('ZREM', key, 'i:' .. token)
  redis.call('ZADD', key, now, 'd:' .. token)
  redis.call('PEXPIRE', key, ttl)
  return {1, 0, redis.call('ZCARD', key)}
end

if mode == 'close' then
  for i = 1, limit do
    redis.call('ZADD', key, now, 'd:' .. token .. ':' .. i)
  end
  redis.call('PEXPIRE', key, ttl)
  return {0, window, redis.call('ZCARD', key)}
end

local taken = redis.call('ZCARD', key)
local allowed = limit - reserve
if taken < allowed then
  redis.call('ZADD', key, now, 'i:' .. token)
  redis.call('PEXPIRE', key, ttl)
  return {1, 0, taken + 1}
end

-- Denied: the caller needs (taken - allowed + 1) slots to free; find when that many have.
local frees = {}
local all = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
for i = 1, #all, 2 do
  local score = tonumber(all[i + 1])
  local free_at = score + window
  if string.sub(all[i], 1, 2) == 'i:' and free_at <= now then
    -- Still in flight past the window: it frees when it finishes or at the grace deadline.
    free_at = score + ttl
  end
  frees[#frees + 1] = free_at
end
table.sort(frees)
local needed = taken - allowed + 1
local wait = window
if needed >= 1 and needed <= #frees then
  wait = frees[needed] - now
end
if wait < 1 then
  wait = 1
end
return {0, math.floor(wait), taken}
