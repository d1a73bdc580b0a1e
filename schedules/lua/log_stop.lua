-- log_stop.lua: close the room's open recording-log session (one round trip).
--
-- With a guard (ARGV[3] non-empty), nothing is written unless HGET KEYS[2] ARGV[3] == ARGV[4]
-- (the caller still owns the room's call attempt).
--
-- KEYS[1] reclog:open:<room> string   KEYS[2] guard hash (ignored without a guard)
-- ARGV[1] stopped_at (epoch s)   ARGV[2] session key prefix (<prefix>:reclog:s:)
-- ARGV[3] guard field ("" for no guard)   ARGV[4] guard value
--
-- Returns {1, session id} when a session was closed, {1} when none was open, {0} when the
-- guard failed. The session key is derived from ARGV[2] + the open session id (known only here).

if ARGV[3] ~= '' and redis.call('HGET', KEYS[2], ARGV[3]) ~= ARGV[4] then
  return {0}
end
local session_id = redis.call('GET', KEYS[1])
if not session_id then
  return {1}
end
redis.call('HSET', ARGV[2] .. session_id, 'stopped_at', ARGV[1])
redis.call('DEL', KEYS[1])
return {1, session_id}
