-- A vendor callback arrived: the silence, if any, is over. Ends a raised episode once.
--
-- KEYS[1]  silence (hash) last_callback_ms, quiet_since_ms, quiet_files, warned_ms
-- ARGV[1]  now ms (the caller's injected clock)
--
-- Returns 1 when this call ended a raised episode (the caller logs it), else 0.

local warned = redis.call('HGET', KEYS[1], 'warned_ms')
redis.call('HSET', KEYS[1], 'last_callback_ms', now_ms(ARGV[1]))
redis.call('HDEL', KEYS[1], 'quiet_since_ms', 'quiet_files', 'warned_ms')
if warned then
  return 1
end
return 0
