-- begin_call.lua: guard one vendor call attempt of a room operation (op:<room>:<n>).
--
-- Run when an operation is issued again (its lease ran out, or a retry came due). At most one
-- attempt is ever open: a second delivery of the same task finds it open and makes no call.
-- An open attempt whose deadline passed had its worker die or hang; its reply is lost, so the
-- call may or may not have reached the vendor: this attempt is the one allowed repeat, and
-- the reply "already recording" / "not recording" to it counts as success.
--
-- KEYS[1] room hash   KEYS[2] rhold set   KEYS[3] inflight zset   KEYS[4] due zset
-- KEYS[5] rhist list
-- ARGV[1] op_id   ARGV[2] now (epoch s, injected clock)   ARGV[3] lease_s
-- ARGV[4] call_token (unique per attempt)   ARGV[5] history_max
-- ARGV[6] retention_s: the room's history lives this long after its last entry
--
-- Returns one of
--   {'stale'}                    the operation is finished or superseded (dropped from the sets)
--   {'busy', deadline}           another attempt is open and within its lease: no call
--   {'abandon', kind, params_json, attempts, uncertain}
--                                a start nobody holds any more: settle it with finish_call
--   {'call', kind, params_json, attempt, uncertain}   the caller owns this attempt

local op_id, now, lease = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local ctx = {now = now, history_max = tonumber(ARGV[5]), retention = tonumber(ARGV[6])}

local r = hgetall(KEYS[1])

if (r.op_id or '') ~= op_id then
  redis.call('ZREM', KEYS[3], op_id)
  redis.call('ZREM', KEYS[4], op_id)
  return {'stale'}
end
local open = (r.call_token or '') ~= ''
if open and tonumber(r.call_deadline) > now then return {'busy', r.call_deadline} end

local uncertain = r.uncertain or '0'
if open then
  uncertain = '1'
  room_note(ctx, KEYS[5], {event = 'lost', op = op_id, attempt = tonumber(r.attempts),
    detail = 'no reply recorded within the lease (worker lost or call hung)'})
end
local params = r.rec_params or '{}'
if r.op_kind == 'start' and redis.call('SCARD', KEYS[2]) == 0 then
  redis.call('HSET', KEYS[1], 'call_token', '', 'call_deadline', '', 'uncertain', uncertain)
  return {'abandon', r.op_kind, params, tonumber(r.attempts), tonumber(uncertain)}
end
local attempt = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('HSET', KEYS[1], 'call_token', ARGV[4], 'call_deadline', now + lease,
  'uncertain', uncertain)
redis.call('ZREM', KEYS[4], op_id)
redis.call('ZADD', KEYS[3], now + lease, op_id)
return {'call', r.op_kind, params, attempt, tonumber(uncertain)}
