-- log_stop.lua: close the room's open recording-log session (one round trip).
--
-- With a guard (ARGV[3] non-empty), nothing is written unless HGET KEYS[2] ARGV[3] == ARGV[4]
-- (the caller still owns the room's call attempt).
--
-- KEYS[1] reclog:open:<room> string   KEYS[2] guard hash (ignored without a guard)
-- KEYS[3..] the session hash reclog:s:<ARGV[2]>, given only when ARGV[2] is not ""
-- ARGV[1] stopped_at (epoch s)   ARGV[2] the open session id the caller read ("" for none)
-- ARGV[3] guard field ("" for no guard)   ARGV[4] guard value
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
redis.call('HSET', KEYS[3], 'stopped_at', ARGV[1])
redis.call('DEL', KEYS[1])
return {1, session_id}
