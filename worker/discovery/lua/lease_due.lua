-- Take due members of a schedule for a while, so concurrent sweepers never take the same one.
--
-- KEYS[1]  a zset scored by due time in ms (outbox:pending, checks, await)
-- ARGV[1]  lease ms: taken members are pushed to now + lease (they come back if not removed)
-- ARGV[2]  at most this many members
--
-- Returns the members whose score was <= now (Redis TIME), oldest first. The caller removes a
-- member (ZREM) once its work is done; if it dies, the member is due again after the lease.

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
for _, member in ipairs(due) do
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), member)
end
return due
