-- Ask for a room look-up, merging with one already asked for (one look-up per room at a time),
-- and make sure the room waits in the look-up queue the budget-aware loop drains.
--
-- KEYS[1]  lookup:<room_id> (hash) beg_ms, end_ms, version, errors
-- KEYS[2]  lookups (zset) room id -> when the loop may run its look-up (epoch ms)
-- ARGV[1]  beg_ms of the upload window wanted
-- ARGV[2]  end_ms of the upload window wanted
-- ARGV[3]  ttl s: a request nobody serves is forgotten after this (its files' await deadline
--          still delivers them); every request, merged or new, renews it
-- ARGV[4]  now ms (the caller's injected clock)
-- ARGV[5]  room id (the queue's member)
--
-- Returns 1 when this is a new request, 0 when it was merged into one already queued (its
-- window widened to cover both). Either way the room is queued: at now unless it already waits
-- (for the budget, a back-off, or a look-up in progress whose end re-queues it if widened).

local beg = tonumber(ARGV[1])
local fin = tonumber(ARGV[2])
local created = 1
if redis.call('EXISTS', KEYS[1]) == 1 then
  created = 0
  local old_beg = tonumber(redis.call('HGET', KEYS[1], 'beg_ms'))
  local old_end = tonumber(redis.call('HGET', KEYS[1], 'end_ms'))
  if beg < old_beg or fin > old_end then
    redis.call('HSET', KEYS[1], 'beg_ms', math.min(beg, old_beg), 'end_ms', math.max(fin, old_end))
    redis.call('HINCRBY', KEYS[1], 'version', 1)
  end
else
  redis.call('HSET', KEYS[1], 'beg_ms', beg, 'end_ms', fin, 'version', 1)
end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
redis.call('ZADD', KEYS[2], 'NX', tonumber(ARGV[4]), ARGV[5])
return created
