-- Enrol a recorded session for the missing-file judgement, once: a session with a delivered
-- file of its room within its span is "found" at once; any other waits for one low-priority
-- room look-up in the missing queue. The cursor moves on in the same step, so a crash between
-- sessions re-reads at most the one being enrolled (and enrolling it again does nothing).
--
-- KEYS[1]  missing:s:<session_id> (hash) state, room_id, enrolled_ms[, judged_ms]
-- KEYS[2]  missing:lookups (zset) session id -> when its look-up may run (ms)
-- KEYS[3]  roomfiles:<room_id> (zset) delivered message ids by the file's start time (s)
-- KEYS[4]  missing:cursor (string) stopped_at (s) up to which sessions were enrolled
-- ARGV[1]  now ms (the caller's injected clock)
-- ARGV[2]  session id
-- ARGV[3]  room id
-- ARGV[4]  lowest file start (s) that belongs to the session
-- ARGV[5]  highest file start (s) that belongs to the session
-- ARGV[6]  the session's stopped_at (s): the cursor never moves back
-- ARGV[7]  ttl s of the judgement (longer than the recording log's retention)
-- ARGV[8]  "1" to judge the session, "" to pass it by (its start's outcome is unknown): only
--          the cursor moves
--
-- Returns 'skipped', 'known' (judged or enrolled before: nothing written), 'found' or
-- 'lookup'.

local cursor = tonumber(redis.call('GET', KEYS[4]) or '0')
if tonumber(ARGV[6]) > cursor then
  redis.call('SET', KEYS[4], ARGV[6])
end
if ARGV[8] ~= '1' then
  return 'skipped'
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 'known'
end
local now = now_ms(ARGV[1])
local state = 'lookup'
if redis.call('ZCOUNT', KEYS[3], ARGV[4], ARGV[5]) > 0 then
  state = 'found'
end
redis.call('HSET', KEYS[1], 'state', state, 'room_id', ARGV[3], 'enrolled_ms', now)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[7]))
if state == 'lookup' then
  redis.call('ZADD', KEYS[2], now, ARGV[2])
end
return state
