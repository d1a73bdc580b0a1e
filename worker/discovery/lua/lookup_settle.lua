-- After a look-up ended (served, or given up): take the room off the look-up queue, unless a
-- request for it is still there (widened meanwhile, or asked for again): then it is due again.
--
-- KEYS[1]  lookup:<room_id> (hash)
-- KEYS[2]  lookups (zset) room id -> when the loop may run its look-up (epoch ms)
-- ARGV[1]  now ms (the caller's injected clock)
-- ARGV[2]  room id
--
-- Returns 1 when the room stays queued, 0 when it left the queue.

if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('ZADD', KEYS[2], tonumber(ARGV[1]), ARGV[2])
  return 1
end
redis.call('ZREM', KEYS[2], ARGV[2])
return 0
