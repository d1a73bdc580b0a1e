-- log_stop.lua: close the room's open recording-log session (one round trip).
--
-- With a guard (ARGV[3] non-empty), nothing is written unless HGET KEYS[2] ARGV[3] == ARGV[4]
-- (the caller still owns the room's call attempt).
--
-- KEYS[1] reclog:open:<room> string   KEYS[2] guard hash (ignored without a guard)
-- KEYS[3] reclog:by_stop zset: sessions whose stop the vendor confirmed, by stopped_at
-- KEYS[4..] the session hash reclog:s:<ARGV[2]>, given only when ARGV[2] is not ""
-- ARGV[1] stopped_at (epoch s)   ARGV[2] the open session id the caller read ("" for none)
-- ARGV[3] guard field ("" for no guard)   ARGV[4] guard value
-- ARGV[5] "1" when the vendor confirmed this stop: the session joins KEYS[3] (a failed stop
--         closes the session too, but nobody can say whether a file should follow)
-- ARGV[6] retention_s: KEYS[3] entries older than this before ARGV[1] are trimmed
--
-- Returns {1, session id} when a session was closed, {1} when none was open, {0} when the
-- guard failed, {'moved'} when the open session is not ARGV[2] (any more): nothing written;
-- read it again and call again.

if ARGV[3] ~= '' and redis.call('HGET', KEYS[2], ARGV[3]) ~= ARGV[4] then
  return {0}
end
local session_id = redis.call('GET', KEYS[1]) or ''
if session_id ~= ARGV[2] then
  return {'moved'}
end
if session_id == '' then
  return {1}
end
redis.call('HSET', KEYS[4], 'stopped_at', ARGV[1])
redis.call('DEL', KEYS[1])
if ARGV[5] == '1' then
  redis.call('ZADD', KEYS[3], ARGV[1], session_id)
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', tonumber(ARGV[1]) - tonumber(ARGV[6]))
end
return {1, session_id}
