-- log_start.lua: open a recording-log session for a room the vendor started (one round trip).
--
-- Idempotent while the room's session stays open: a second call returns the open session.
-- With a guard (ARGV[7] non-empty), nothing is written unless HGET KEYS[5] ARGV[7] == ARGV[8]:
-- the caller still owns the room's call attempt (a reply that comes after the attempt was taken
-- over is not logged; the new owner logs).
--
-- KEYS[1] reclog:open:<room> string   KEYS[2] reclog:s:<session> hash
-- KEYS[3] reclog:by_start zset        KEYS[4] reclog:room:<room> zset
-- KEYS[5] guard hash (the room hash; ignored without a guard)
-- KEYS[6] reclog:max_span string: the widest start span (started_at - sent_at) logged, so a
--         narrow read by start time knows how far back a session may begin that spans a second
-- ARGV[1] session id   ARGV[2] room id   ARGV[3] started_at (epoch s)
-- ARGV[4] booking ids (JSON list)       ARGV[5] user data ("" for none)
-- ARGV[6] retention_s  ARGV[7] guard field ("" for no guard)   ARGV[8] guard value
-- ARGV[9] sent_at: when the first attempt of the start was sent, the earliest moment the vendor
--         may have started ("" = started_at); the session is indexed by it
-- ARGV[10] "1" when the start's outcome is unknown (logged as possibly recording)
--
-- Returns {1, session id} (the new or the already open one), or {0} when the guard failed.

if ARGV[7] ~= '' and redis.call('HGET', KEYS[5], ARGV[7]) ~= ARGV[8] then
  return {0}
end
if not redis.call('SET', KEYS[1], ARGV[1], 'NX') then
  return {1, redis.call('GET', KEYS[1])}
end
local sent_at = ARGV[9] or ''
if sent_at == '' or tonumber(sent_at) > tonumber(ARGV[3]) then sent_at = ARGV[3] end
redis.call('HSET', KEYS[2], 'room_id', ARGV[2], 'started_at', ARGV[3], 'stopped_at', '',
  'booking_ids', ARGV[4], 'user_data', ARGV[5], 'sent_at', sent_at, 'uncertain', ARGV[10] or '')
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[6]))
redis.call('ZADD', KEYS[3], sent_at, ARGV[1])
redis.call('ZADD', KEYS[4], sent_at, ARGV[1])
local span = tonumber(ARGV[3]) - tonumber(sent_at)
if span > tonumber(redis.call('GET', KEYS[6]) or '0') then
  redis.call('SET', KEYS[6], tostring(span))
end
return {1, ARGV[1]}
