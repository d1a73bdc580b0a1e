-- claim_due.lua: claim due (or soon due) and lease-expired actions in one atomic step.
--
-- KEYS[1]  due       zset  action id -> due time (epoch s)
-- KEYS[2]  inflight  zset  action id -> lease deadline (epoch s)
-- ARGV[1]  now       epoch seconds (the caller's injected clock; the script never reads TIME)
-- ARGV[2]  horizon   claim actions due up to this time (>= now; now + DISPATCH_AHEAD_S)
-- ARGV[3]  lease_s   the hand-over lease: how long a claimed action may wait for a worker to
--                    receive it (that worker then renews it by heartbeat, renew_leases.lua)
-- ARGV[4]  limit     most actions claimed by this call
--
-- Returns {reissued_count, next_due, next_lease, id1, at1, id2, at2, ...}:
--   idN/atN   a claimed action and when it is due (at <= now for one due already); the first
--             reissued_count pairs are in-flight actions whose lease ran out (issued again).
--             Each now sits in KEYS[2] scored max(now + lease_s, at), so no caller gets it
--             again before its lease ends (nor before it is due), whichever process calls.
--   next_due  earliest due time still waiting in KEYS[1] ("" if none)
--   next_lease earliest lease end in KEYS[2] ("" if none)
-- Cost: O(k log n) for the k ids returned (range reads with LIMIT), never a scan.

local now, horizon = tonumber(ARGV[1]), tonumber(ARGV[2])
local lease, limit = tonumber(ARGV[3]), tonumber(ARGV[4])
local out = {}
local count = 0

local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, limit)
for _, id in ipairs(expired) do
  redis.call('ZADD', KEYS[2], now + lease, id)
  out[#out + 1] = id
  out[#out + 1] = ARGV[1]
  count = count + 1
end
local reissued = count

if count < limit then
  local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', horizon, 'WITHSCORES',
    'LIMIT', 0, limit - count)
  for i = 1, #due, 2 do
    local id, at = due[i], tonumber(due[i + 1])
    redis.call('ZREM', KEYS[1], id)
    redis.call('ZADD', KEYS[2], math.max(now + lease, at), id)
    out[#out + 1] = id
    out[#out + 1] = due[i + 1]
  end
end

local function head(key)
  local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if #first == 2 then return first[2] end
  return ''
end

local result = {reissued, head(KEYS[1]), head(KEYS[2])}
for _, v in ipairs(out) do result[#result + 1] = v end
return result
