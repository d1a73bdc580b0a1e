-- Move a session's missing-file judgement on, only from a state that may lead there:
-- lookup -> looked (the look-up found nothing; the message is being claimed), lookup|looked ->
-- found (a file turned up) or missing (its one message is claimed). A final state leaves the
-- missing queue; a repeated or late call changes nothing.
--
-- KEYS[1]  missing:s:<session_id> (hash)
-- KEYS[2]  missing:lookups (zset)
-- ARGV[1]  now ms (the caller's injected clock)
-- ARGV[2]  session id
-- ARGV[3]  the new state: looked | found | missing
-- ARGV[4]  the look-up's outcome, JSON ("" keeps what is stored)
--
-- Returns the state now stored ('' when the session is not enrolled).

local state = redis.call('HGET', KEYS[1], 'state')
if not state then
  redis.call('ZREM', KEYS[2], ARGV[2])
  return ''
end
local to = ARGV[3]
local allowed = (state == 'lookup') or (state == 'looked' and to ~= 'looked')
if allowed then
  redis.call('HSET', KEYS[1], 'state', to, 'judged_ms', now_ms(ARGV[1]))
  if ARGV[4] ~= '' then
    redis.call('HSET', KEYS[1], 'lookup', ARGV[4])
  end
  state = to
end
if state == 'found' or state == 'missing' then
  redis.call('ZREM', KEYS[2], ARGV[2])
end
return state
