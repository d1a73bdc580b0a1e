-- apply_action.lua: apply a due booking action (start:<booking>:<seq> or stop:<booking>:<seq>).
--
-- A start makes the booking a holder of its room; a stop releases it. When the room's
-- recording must change (first holder of an idle room, last holder of a recording room) the
-- script opens the room's vendor operation op:<room>:<n>, leases it in KEYS[4] and begins its
-- first call attempt under ARGV[4], all in this one step: whoever gets {'call', ...} back is
-- the only process allowed to call the vendor for that attempt.
--
-- KEYS[1]  booking hash        KEYS[2]  bhist list          KEYS[3]  due zset
-- KEYS[4]  inflight zset       KEYS[5]  active zset         KEYS[6]  dl:entries hash
-- KEYS[7]  dl:index zset       KEYS[8]  dl:seq string
-- KEYS[9]  room hash           KEYS[10] rhold set           KEYS[11] rrel set
-- KEYS[12] rhist list          (KEYS[9..12]: the room ARGV[7], see below)
-- KEYS[13] outbox zset (booking events to publish downstream, see tell in lib.lua)
-- KEYS[14] counts hash (bookings per state)  KEYS[15] ended zset (finished bookings by expiry;
--          both adjusted by set_booking_state / retire_booking in lib.lua)
-- ARGV[1]  action_id
-- ARGV[2]  now          epoch s (injected clock)
-- ARGV[3]  lease_s      lease of a vendor call attempt / of the operation in KEYS[4]
-- ARGV[4]  call_token   unique id of the caller's call attempt
-- ARGV[5]  retention_s  ARGV[6] history_max
-- ARGV[7]  room_id      the room the caller read from the booking hash (its room, field rm,
--          for a start, its held room, field hr, for a stop), whose keys are KEYS[9..12]
-- ARGV[8]  armed        '1': run ahead of the due time, as of it (ARGV[2] is the due time;
--          schedules/firing.py). An action whose room is mid-operation (a start of a room
--          starting or stopping, a stop of a room starting) is not armed: {'early', next_at},
--          nothing written, so its effects (a follow-on operation made by the room's
--          settlement) cannot come before its due time; the caller runs it at the due time.
--
-- Returns one of
--   {'moved'}                 the booking's room is not ARGV[7] (any more): nothing written;
--                             read it again and call again with that room's keys
--   {'stale', why}            not the booking's current action (a redelivery or superseded)
--   {'early', next_at}        not due yet, or not armed (ARGV[8]); left in flight (the caller
--                             may wait and retry)
--   {'missed'}                the window ended before the start could be made: failed
--   {'joined', room_id}       the room already records: booking recording, no vendor call
--   {'waiting', room_state}   the room's operation is under way; it will take the booking along
--   {'left', holders_left}    released without a vendor call (others hold, or nothing to stop)
--   {'released', 'starting'}  last holder left while the room's start is still pending
--   {'call', op_id, kind, params_json, attempt, uncertain}

local aid, now, lease = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local token = ARGV[4]
local ctx = {now = now, retention = tonumber(ARGV[5]), history_max = tonumber(ARGV[6]),
  counts = KEYS[14], ended = KEYS[15]}
local K_BOOKING, K_BHIST, K_DUE, K_INFLIGHT, K_ACTIVE = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local K_DL_ENTRIES, K_DL_INDEX, K_DL_SEQ = KEYS[6], KEYS[7], KEYS[8]
local K_ROOM, K_RHOLD, K_RREL, K_RHIST = KEYS[9], KEYS[10], KEYS[11], KEYS[12]
local K_OUTBOX = KEYS[13]

local b = hgetall(K_BOOKING)
local bid = action_subject(aid)
if next_action(b, bid) ~= aid then return {'stale', 'not the current action'} end
if tonumber(b.na) > now then return {'early', b.na} end
local kind = string.sub(aid, 1, string.find(aid, ':', 1, true) - 1)
local room_id = b.rm or ''
if kind == 'stop' then room_id = b.hr or '' end
if room_id ~= ARGV[7] then return {'moved'} end
if ARGV[8] == '1' then
  local rstate = redis.call('HGET', K_ROOM, 'state') or 'idle'
  if rstate == 'starting' or (kind == 'start' and rstate == 'stopping') then
    return {'early', b.na}
  end
end
first_note(b, K_BOOKING, K_BHIST, bid)

local function set_state(state, reason)
  booking_state(ctx, K_BOOKING, K_BHIST, K_ACTIVE, K_OUTBOX, bid, state, reason,
    {event = kind, action = aid})
end

-- Failed without a vendor call: `message` is kept on the booking, `reason` in its history,
-- `letter` is the dead letter's message. What was tried: no vendor call of this booking's own;
-- the room's last vendor error, if any, is kept with it.
local function fail(code, message, reason, letter)
  local last = redis.call('HMGET', K_ROOM, 'last_code', 'last_message')
  bput(K_BOOKING, 'cd', code, 'ms', message, 'tr', cjson.encode({
    call = cjson.null, attempts = 0, last_code = last[1] or cjson.null,
    last_message = last[2] or cjson.null}))
  set_state('failed', reason)
  dead_letter(ctx, K_DL_SEQ, K_DL_ENTRIES, K_DL_INDEX, {request = booking_request(b, bid),
    booking_id = bid, room_id = room_id, error = code, code = code, message = letter})
end

local function call(op_kind, params)
  local op_id = open_op(ctx, K_ROOM, K_INFLIGHT, K_RHIST, {room_id = room_id, kind = op_kind,
    params = params, by = aid, token = token, lease = lease})
  return {'call', op_id, op_kind, params, 1, 0}
end

if kind == 'start' then
  redis.call('ZREM', K_INFLIGHT, aid)
  if tonumber(b.ed) <= now then
    bput(K_BOOKING, 'nx', '', 'na', '')
    local why = 'the window ended before its start could be made'
    fail('missed', why, 'missed: ' .. why, why ..
      ' (workers or dispatcher down for the whole window?)')
    return {'missed'}
  end
  redis.call('SADD', K_RHOLD, bid)
  local seq = tonumber(b.sq) + 1
  local stop_id = 'stop:' .. bid .. ':' .. seq
  redis.call('ZADD', K_DUE, b.ed, stop_id)
  redis.call('ZADD', K_ACTIVE, b.ed, bid)
  bput(K_BOOKING, 'sq', seq, 'nx', 'stop', 'na', b.ed, 'hr', room_id, 'rc', '')
  local rstate = redis.call('HGET', K_ROOM, 'state') or 'idle'
  if rstate == 'recording' then
    redis.call('HSET', K_BOOKING, 'rc', '1')
    set_state('recording', 'joined the running recording of the room (no vendor call)')
    room_note(ctx, K_RHIST, {event = 'joined', booking_id = bid})
    return {'joined', room_id}
  elseif rstate == 'starting' or rstate == 'stopping' then
    set_state('starting', 'room is ' .. rstate .. '; waiting for its operation')
    return {'waiting', rstate}
  end
  set_state('starting')
  return call('start', b.pa or '{}')
end

-- stop
redis.call('ZREM', K_INFLIGHT, aid)
local ending = b.en or ''
local after = 'stopped'
if ending == 'cancel' then after = 'cancelled' end
if ending == 'restart' then
  local seq = tonumber(b.sq) + 1
  local start_id = 'start:' .. bid .. ':' .. seq
  local at = math.max(tonumber(b.sd), now)
  redis.call('ZADD', K_DUE, at, start_id)
  redis.call('HSET', K_BOOKING, 'sq', seq, 'nx', 'start', 'na', at)
  redis.call('ZREM', K_ACTIVE, bid)
  after = 'scheduled'
else
  bput(K_BOOKING, 'nx', '', 'na', '')
end
bput(K_BOOKING, 'en', '', 'hr', '')
redis.call('SREM', K_RHOLD, bid)
local never = after == 'stopped' and b.rc ~= '1'

local holders = redis.call('SCARD', K_RHOLD)
local rstate = redis.call('HGET', K_ROOM, 'state') or 'idle'
if holders > 0 or rstate == 'idle' or rstate == 'stopping' then
  if never then
    local why = 'the window ended before the room\'s recording started'
    fail('not_started', why, why, why)
  else
    local why = 'released the room'
    if holders > 0 then why = 'released; ' .. holders .. ' other booking(s) still hold the room' end
    set_state(after, why)
  end
  room_note(ctx, K_RHIST, {event = 'released', booking_id = bid, holders = holders})
  return {'left', holders}
end

-- Last holder of a room that records or is starting.
if after == 'scheduled' then
  set_state('scheduled', 'released; starting again at the new window')
else
  redis.call('HSET', K_BOOKING, 'fi', after)
  redis.call('SADD', K_RREL, bid)
  set_state('stopping')
end
if rstate == 'recording' then
  return call('stop', redis.call('HGET', K_ROOM, 'rec_params') or '{}')
end
-- The room's start is still pending: wake it if it waits for a retry, so it is settled now.
local op_id = redis.call('HGET', K_ROOM, 'op_id') or ''
if op_id ~= '' and redis.call('ZSCORE', K_DUE, op_id) then
  redis.call('ZADD', K_DUE, now, op_id)
end
return {'released', 'starting'}
