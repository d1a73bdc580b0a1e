-- add_bookings.lua: add booking ids to the room's open recording-log session, in one step (two
-- bookings joining one recording at once must both end up in it).
--
-- KEYS[1] reclog:open:<room> string   KEYS[2] reclog:s:<ARGV[1]> hash (the open session)
-- ARGV[1] the open session id the caller read
-- ARGV[2..] booking ids to add
--
-- Returns {1} when added (or already there), {0} when no session is open (nothing written),
-- {'moved'} when the open session is not ARGV[1] (any more): nothing written; read it again
-- and call again.

local session_id = redis.call('GET', KEYS[1])
if not session_id then
  return {0}
end
if session_id ~= ARGV[1] then
  return {'moved'}
end
local ids = {}
local seen = {}
for _, id in ipairs(cjson.decode(redis.call('HGET', KEYS[2], 'booking_ids') or '[]')) do
  if not seen[id] then
    seen[id] = true
    ids[#ids + 1] = id
  end
end
for i = 2, #ARGV do
  if not seen[ARGV[i]] then
    seen[ARGV[i]] = true
    ids[#ids + 1] = ARGV[i]
  end
end
table.sort(ids)
redis.call('HSET', KEYS[2], 'booking_ids', cjson.encode(ids))
return {1}
