-- renew_leases.lua: a living process keeps the leases of the work it holds alive (heartbeat).
--
-- Work held: claimed actions whose message this process has received (not yet finished), and
-- the open call attempts it is making. Each lease is pushed to now + lease_s, never shortened,
-- and only while the work is still this process's: an action still in flight, an attempt whose
-- token is still the room's. What is no longer held is reported, so the caller forgets it.
--
-- KEYS[1]     inflight zset
-- KEYS[2..]   the room hash of each call attempt in ARGV (KEYS[1 + i] for the i-th attempt)
-- ARGV[1] now (epoch s, injected clock)   ARGV[2] lease_s   ARGV[3] n: how many action ids follow
-- ARGV[4..3+n] action ids, then op_id, call_token pairs (one per attempt)
--
-- Returns {held_1, ..., held_n, held_op_1, ...}: 1 when that lease was renewed (or is already
-- longer), 0 when the work is no longer the caller's (confirmed, settled, taken over).

local now, lease, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local until_ = now + lease
local out = {}

local function renew(id)
  local score = redis.call('ZSCORE', KEYS[1], id)
  if not score then return 0 end
  if tonumber(score) < until_ then redis.call('ZADD', KEYS[1], until_, id) end
  return 1
end

for i = 4, 3 + n do out[#out + 1] = renew(ARGV[i]) end

local attempt = 0
for i = 4 + n, #ARGV, 2 do
  attempt = attempt + 1
  local room = KEYS[1 + attempt]
  local op_id, token = ARGV[i], ARGV[i + 1]
  local held = 0
  if redis.call('HGET', room, 'op_id') == op_id and redis.call('HGET', room, 'call_token') == token
      then
    local deadline = tonumber(redis.call('HGET', room, 'call_deadline')) or 0
    if deadline < until_ then redis.call('HSET', room, 'call_deadline', until_) end
    renew(op_id)
    held = 1
  end
  out[#out + 1] = held
end
return out
