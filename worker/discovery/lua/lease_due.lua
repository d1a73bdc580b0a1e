-- Take due members of a schedule for a while, so concurrent sweepers never take the same one.
--
-- KEYS[1]  a zset scored by due time in ms (outbox:pending, checks, await)
-- ARGV[1]  now ms (epoch; the caller's injected clock, the script never reads TIME)
-- ARGV[2]  lease ms: taken members are pushed to now + lease (they come back if not removed)
-- ARGV[3]  at most this many members
--
-- Returns the members whose score was <= now, oldest first. The caller removes a member (ZREM)
-- once its work is done; if it dies, the member is due again after the lease.

local now = now_ms(ARGV[1])
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[3]))
for _, member in ipairs(due) do
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), member)
end
return due
