-- Ask for a room look-up, merging with one already asked for (one look-up per room at a time).
--
-- KEYS[1]  lookup:<room_id> (hash) beg_ms, end_ms, version
-- ARGV[1]  beg_ms of the upload window wanted
-- ARGV[2]  end_ms of the upload window wanted
-- ARGV[3]  ttl s: a request nobody serves is forgotten after this (its files' await deadline
--          still delivers them)
--
-- Returns 1 when this is a new request (the caller enqueues the look-up task), 0 when it was
-- merged into one already queued (its window widened to cover both).

local beg = tonumber(ARGV[1])
local fin = tonumber(ARGV[2])
if redis.call('EXISTS', KEYS[1]) == 1 then
  local old_beg = tonumber(redis.call('HGET', KEYS[1], 'beg_ms'))
  local old_end = tonumber(redis.call('HGET', KEYS[1], 'end_ms'))
  if beg < old_beg or fin > old_end then
    redis.call('HSET', KEYS[1], 'beg_ms', math.min(beg, old_beg), 'end_ms', math.max(fin, old_end))
    redis.call('HINCRBY', KEYS[1], 'version', 1)
  end
  return 0
end
redis.call('HSET', KEYS[1], 'beg_ms', beg, 'end_ms', fin, 'version', 1)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
