-- prune_ended.lua: take finished bookings whose hash has expired out of the per-state counts.
--
-- A booking in an end state (stopped, failed, cancelled) is a member "<state>:<booking_id>" of
-- KEYS[2], scored by when its hash expires (retire_booking in lib.lua). Redis expires the hash
-- on its own; this script, run with the members due by ARGV[1] (the caller reads them first,
-- so that every booking key comes in KEYS), decrements the state's count once per expired
-- booking. A member whose hash still exists (the caller's clock ahead of Redis's) is scored
-- again by its remaining time to live; one whose hash no longer expires or changed state
-- (which the lifecycle scripts never leave behind) is dropped without touching the counts.
--
-- KEYS[1]  counts   hash  bookings per state
-- KEYS[2]  ended    zset  "<state>:<booking_id>" -> when the booking's hash expires (epoch s)
-- KEYS[3..] booking hash of each member in ARGV[2..]: KEYS[i + 1] for ARGV[i]
-- ARGV[1]  now      epoch s (injected clock)
-- ARGV[2..] members of KEYS[2] as the caller read them (scored <= now)
--
-- Returns {pruned, rescored, dropped}: members whose count was taken away, members scored
-- again (hash still there), members dropped without a count change. A member gone or no
-- longer due (a concurrent prune, or rescheduled) is skipped.

local now = tonumber(ARGV[1])
local pruned, rescored, dropped = 0, 0, 0
for i = 2, #ARGV do
  local member, booking = ARGV[i], KEYS[i + 1]
  local score = redis.call('ZSCORE', KEYS[2], member)
  if score and tonumber(score) <= now then
    local state = string.sub(member, 1, string.find(member, ':', 1, true) - 1)
    local ttl_ms = redis.call('PTTL', booking)
    if ttl_ms == -2 then
      redis.call('ZREM', KEYS[2], member)
      redis.call('HINCRBY', KEYS[1], state, -1)
      pruned = pruned + 1
    elseif ttl_ms > 0 and redis.call('HGET', booking, 'st') == state then
      redis.call('ZADD', KEYS[2], now + ttl_ms / 1000, member)
      rescored = rescored + 1
    else
      redis.call('ZREM', KEYS[2], member)
      dropped = dropped + 1
    end
  end
end
return {pruned, rescored, dropped}
