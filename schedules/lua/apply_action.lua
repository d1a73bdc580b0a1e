-- apply_action.lua: apply a due booking action (start:<booking>:<seq> or stop:<booking>:<seq>).
--
-- A start makes the booking a holder of its room; a stop releases it. When the room's
-- recording must change (first holder of an idle room, last holder of a recording room) the
-- script opens the room's vendor operation op:<room>:<n>, leases it in KEYS[4] and begins its
-- first call attempt under ARGV[5], all in this one step: whoever gets {'call', ...} back is
-- the only process allowed to call the vendor for that attempt.
--
-- KEYS[1] booking hash   KEYS[2] bhist list   KEYS[3] due zset   KEYS[4] inflight zset
-- KEYS[5] active zset    KEYS[6] dl:entries hash   KEYS[7] dl:index zset   KEYS[8] dl:seq
-- ARGV[1]  action_id
-- ARGV[2]  now          epoch s (injected clock)
-- ARGV[3]  lease_s      lease of a vendor call attempt / of the operation in KEYS[4]
-- ARGV[4]  call_token   unique id of the caller's call attempt
-- ARGV[5]  retention_s  ARGV[6] history_max
-- ARGV[7]  key base (<prefix>:lc:): the room's keys are <base>room:<id>, <base>rhold:<id>,
--          <base>rrel:<id>, <base>rhist:<id>; which room is only known from the booking hash
--
-- Returns one of
--   {'stale', why}            not the booking's current action (a redelivery or superseded)
--   {'early', next_at}        not due yet; left in flight (the caller may wait and retry)
--   {'missed'}                the window ended before the start could be made: failed
--   {'joined', room_id}       the room already records: booking recording, no vendor call
--   {'waiting', room_state}   the room's operation is under way; it will take the booking along
--   {'left', holders_left}    released without a vendor call (others hold, or nothing to stop)
--   {'released', 'starting'}  last holder left while the room's start is still pending
--   {'call', op_id, kind, params_json, attempt, uncertain}

local aid, now, lease = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local token = ARGV[4]
local retention, history_max = tonumber(ARGV[5]), tonumber(ARGV[6])
local base = ARGV[7]
local K_DUE, K_INFLIGHT, K_ACTIVE = KEYS[3], KEYS[4], KEYS[5]
local K_DL_ENTRIES, K_DL_INDEX, K_DL_SEQ = KEYS[6], KEYS[7], KEYS[8]
local K_ROOM, K_RHOLD, K_RREL, K_RHIST
local function use_room(room_id)
  K_ROOM = base .. 'room:' .. room_id
  K_RHOLD = base .. 'rhold:' .. room_id
  K_RREL = base .. 'rrel:' .. room_id
  K_RHIST = base .. 'rhist:' .. room_id
end

local function hgetall(key)
  local flat = redis.call('HGETALL', key)
  local t = {}
  for i = 1, #flat, 2 do t[flat[i]] = flat[i + 1] end
  return t
end

local b = hgetall(KEYS[1])
if (b.next or '') ~= aid then return {'stale', 'not the current action'} end
if tonumber(b.next_at) > now then return {'early', b.next_at} end
local bid = b.booking_id
local kind = string.sub(aid, 1, string.find(aid, ':', 1, true) - 1)

local function note(key, entry)
  entry.at = now
  redis.call('RPUSH', key, cjson.encode(entry))
  redis.call('LTRIM', key, -history_max, -1)
end

-- The room's history outlives the room's last event by the retention (see finish_call.lua).
local function room_note(entry)
  note(K_RHIST, entry)
  redis.call('EXPIRE', K_RHIST, retention)
end

local function set_state(state, reason, extra)
  redis.call('HSET', KEYS[1], 'state', state, 'changed_at', now, 'reason', reason or '')
  local entry = extra or {}
  entry.event = kind
  entry.action = aid
  entry.from = b.state
  entry.state = state
  if reason and reason ~= '' then entry.detail = reason end
  note(KEYS[2], entry)
  if state == 'stopped' or state == 'failed' or state == 'cancelled' then
    redis.call('ZREM', K_ACTIVE, bid)
    redis.call('EXPIRE', KEYS[1], retention)
    redis.call('EXPIRE', KEYS[2], retention)
  end
end

local function dead_letter(room_id, err, message)
  local id = tostring(redis.call('INCR', K_DL_SEQ))
  local req = cjson.decode(b.request or '{}')
  local entry = {id = id, created_at = now, task = req.task or 'recordings.schedule',
    kwargs = req.kwargs or {}, error = err, code = err, message = message,
    booking_id = bid, room_id = room_id, replayed_at = cjson.null, replay = cjson.null}
  redis.call('HSET', K_DL_ENTRIES, id, cjson.encode(entry))
  redis.call('ZADD', K_DL_INDEX, now, id)
end

local function open_op(room_id, op_kind, params)
  local n = redis.call('HINCRBY', K_ROOM, 'op_seq', 1)
  local op_id = 'op:' .. room_id .. ':' .. n
  local rstate = 'starting'
  if op_kind == 'stop' then rstate = 'stopping' end
  redis.call('HSET', K_ROOM, 'room_id', room_id, 'state', rstate, 'op_id', op_id,
    'op_kind', op_kind, 'op_started_at', now, 'op_by', aid, 'call_token', token,
    'call_deadline', now + lease, 'attempts', 1, 'uncertain', 0, 'changed_at', now)
  if op_kind == 'start' then redis.call('HSET', K_ROOM, 'rec_params', params) end
  redis.call('ZADD', K_INFLIGHT, now + lease, op_id)
  room_note({event = 'op', op = op_id, kind = op_kind, by = aid})
  return {'call', op_id, op_kind, params, 1, 0}
end

if kind == 'start' then
  local room_id = b.room_id
  use_room(room_id)
  redis.call('ZREM', K_INFLIGHT, aid)
  if tonumber(b.stop_due) <= now then
    redis.call('HSET', KEYS[1], 'next', '', 'next_at', '', 'code', 'missed',
      'message', 'the window ended before its start could be made')
    set_state('failed', 'missed: the window ended before its start could be made')
    dead_letter(room_id, 'missed', 'the window ended before its start could be made ' ..
      '(workers or dispatcher down for the whole window?)')
    return {'missed'}
  end
  redis.call('SADD', K_RHOLD, bid)
  local seq = tonumber(b.seq) + 1
  local stop_id = 'stop:' .. bid .. ':' .. seq
  redis.call('ZADD', K_DUE, b.stop_due, stop_id)
  redis.call('ZADD', K_ACTIVE, b.stop_due, bid)
  redis.call('HSET', KEYS[1], 'seq', seq, 'next', stop_id, 'next_at', b.stop_due,
    'held_room', room_id, 'recorded', '')
  local rstate = redis.call('HGET', K_ROOM, 'state') or 'idle'
  if rstate == 'recording' then
    redis.call('HSET', KEYS[1], 'recorded', '1')
    set_state('recording', 'joined the running recording of the room (no vendor call)')
    room_note({event = 'joined', booking_id = bid})
    return {'joined', room_id}
  elseif rstate == 'starting' or rstate == 'stopping' then
    set_state('starting', 'room is ' .. rstate .. '; waiting for its operation')
    return {'waiting', rstate}
  end
  set_state('starting')
  return open_op(room_id, 'start', b.params or '{}')
end

-- stop
local room_id = b.held_room or ''
use_room(room_id)
redis.call('ZREM', K_INFLIGHT, aid)
local ending = b.ending or ''
local after = 'stopped'
if ending == 'cancel' then after = 'cancelled' end
if ending == 'restart' then
  local seq = tonumber(b.seq) + 1
  local start_id = 'start:' .. bid .. ':' .. seq
  local at = math.max(tonumber(b.start_due), now)
  redis.call('ZADD', K_DUE, at, start_id)
  redis.call('HSET', KEYS[1], 'seq', seq, 'next', start_id, 'next_at', at)
  redis.call('ZREM', K_ACTIVE, bid)
  after = 'scheduled'
else
  redis.call('HSET', KEYS[1], 'next', '', 'next_at', '')
end
redis.call('HSET', KEYS[1], 'ending', '', 'held_room', '')
redis.call('SREM', K_RHOLD, bid)
local never = after == 'stopped' and b.recorded ~= '1'

local holders = redis.call('SCARD', K_RHOLD)
local rstate = redis.call('HGET', K_ROOM, 'state') or 'idle'
if holders > 0 or rstate == 'idle' or rstate == 'stopping' then
  if never then
    local why = 'the window ended before the room\'s recording started'
    redis.call('HSET', KEYS[1], 'code', 'not_started', 'message', why)
    set_state('failed', why)
    dead_letter(room_id, 'not_started', why)
  else
    local why = 'released the room'
    if holders > 0 then why = 'released; ' .. holders .. ' other booking(s) still hold the room' end
    set_state(after, why)
  end
  room_note({event = 'released', booking_id = bid, holders = holders})
  return {'left', holders}
end

-- Last holder of a room that records or is starting.
if after == 'scheduled' then
  set_state('scheduled', 'released; starting again at the new window')
else
  redis.call('HSET', KEYS[1], 'final', after)
  redis.call('SADD', K_RREL, bid)
  set_state('stopping')
end
if rstate == 'recording' then
  return open_op(room_id, 'stop', redis.call('HGET', K_ROOM, 'rec_params') or '{}')
end
-- The room's start is still pending: wake it if it waits for a retry, so it is settled now.
local op_id = redis.call('HGET', K_ROOM, 'op_id') or ''
if op_id ~= '' and redis.call('ZSCORE', K_DUE, op_id) then
  redis.call('ZADD', K_DUE, now, op_id)
end
return {'released', 'starting'}
