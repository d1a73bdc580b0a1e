-- finish_call.lua: record the outcome of a vendor call attempt and settle the room.
--
-- Only the attempt that owns the room operation (ARGV[2] = the open call token) may settle it:
-- a late reply from a superseded attempt is refused, so a confirmed call is never confirmed,
-- retried or failed twice. After settling, if the room's holders want the other state (a
-- holder arrived while it stopped, or the last one left while it started), the next operation
-- is opened and its first attempt begun under ARGV[9] in the same step.
--
-- KEYS[1] room hash     KEYS[2] rhold set      KEYS[3] rrel set       KEYS[4] rhist list
-- KEYS[5] inflight zset KEYS[6] due zset       KEYS[7] active zset    KEYS[8] rooms zset
-- KEYS[9] dl:entries hash  KEYS[10] dl:index zset  KEYS[11] dl:seq string
-- KEYS[12] outbox zset (booking events to publish downstream, see tell in lib.lua)
-- KEYS[13] counts hash (bookings per state)  KEYS[14] ended zset (finished bookings by expiry;
--          both adjusted by set_booking_state / retire_booking in lib.lua)
-- KEYS[15..] booking hash, bhist list of each booking in ARGV[15..], in pairs: KEYS[13 + 2i],
--          KEYS[14 + 2i] for ARGV[14 + i]
-- ARGV[1]  op_id
-- ARGV[2]  call_token of the attempt ("" to settle an abandoned start, see begin_call.lua)
-- ARGV[3]  now (epoch s, injected clock)
-- ARGV[4]  outcome: ok | already | retry | lost | fail | abandon  (lost: a retry whose reply was
--          lost, e.g. a timeout: the vendor may have applied the call, so the operation becomes
--          uncertain)
-- ARGV[5]  vendor code    ARGV[6] vendor message
-- ARGV[7]  retry_at (epoch s; used when outcome is retry)
-- ARGV[8]  lease_s        ARGV[9] token for the next operation's first attempt
-- ARGV[10] retention_s    ARGV[11] stop_retry_s   ARGV[12] history_max
-- ARGV[13] the attempt's kind (start | stop)   ARGV[14] its params (JSON)
-- ARGV[15..] booking ids: the members of KEYS[2] and KEYS[3] as the caller read them
--
-- The script settles the bookings in KEYS[2] and KEYS[3]; each must be one of ARGV[15..] (whose
-- keys it was given), or it returns {'moved'} having written nothing: the caller reads both sets
-- again and calls again. Ids given that are no longer in either set are left alone.
--
-- A stale "ok" to a start (the vendor started the room for an attempt that was taken over) in a
-- room that is idle with no holder would leave the vendor recording for nobody: a stop
-- operation is opened for it, as the next operation of the stale reply.
--
-- A start whose outcome was unknown (uncertain: a reply lost, a worker died mid-call) leaves the
-- room possibly recording whatever a later attempt answers: a failure string then confirms it
-- as "possibly recording" (room hash field possibly = 1) rather than failing its bookings, so
-- their stop stays owed (sent when the last holder ends, or at once when none holds it). A
-- failure string to the stop of a room possibly recording, or to a stop repeated after a lost
-- reply, is harmless and final (confirmed).
--
-- Returns {'moved'} (see above), or
--   {verdict, kind, bookings_json, next_op_id, next_kind, next_params_json, retry_at}
--   verdict: stale | confirmed | retry | failed
--   bookings_json: confirmed (now recording / finished) or failed booking ids
--   next_*: "" unless a next operation was opened (the caller calls the vendor for it)

local op_id, token, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
local outcome, code, message = ARGV[4], ARGV[5], ARGV[6]
local lease, stop_retry = tonumber(ARGV[8]), tonumber(ARGV[11])
local ctx = {now = now, retention = tonumber(ARGV[10]), history_max = tonumber(ARGV[12]),
  counts = KEYS[13], ended = KEYS[14]}
local K_ROOM, K_RHOLD, K_RREL, K_RHIST = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local K_INFLIGHT, K_DUE, K_ACTIVE, K_ROOMS = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local K_DL_ENTRIES, K_DL_INDEX, K_DL_SEQ = KEYS[9], KEYS[10], KEYS[11]
local K_OUTBOX = KEYS[12]

local function next_op(room_id, kind, params, by, detail)
  return open_op(ctx, K_ROOM, K_INFLIGHT, K_RHIST, {room_id = room_id, kind = kind,
    params = params, by = by, token = ARGV[9], lease = lease, detail = detail})
end

local r = hgetall(K_ROOM)

if (r.op_id or '') ~= op_id or (r.call_token or '') ~= token then
  -- A reply to an attempt that was taken over (or settled) changes nothing; keep it visible.
  room_note(ctx, K_RHIST, {event = 'late_reply', op = op_id, outcome = outcome, code = code,
    message = message})
  local idle = (r.state or 'idle') == 'idle' and (r.op_id or '') == ''
  if ARGV[13] == 'start' and outcome == 'ok' and idle and r.room_id
      and redis.call('SCARD', K_RHOLD) == 0 then
    local stop_op = next_op(r.room_id, 'stop', ARGV[14], op_id,
      'the vendor started the room after it was released: stop it')
    return {'stale', '', '[]', stop_op, 'stop', ARGV[14], ''}
  end
  return {'stale', '', '[]', '', '', '', ''}
end
local kind, room_id = r.op_kind, r.room_id

-- The keys of each booking given, by id.
local given = {}
for i = 15, #ARGV do
  given[ARGV[i]] = {booking = KEYS[2 * i - 15], bhist = KEYS[2 * i - 14]}
end
for _, set in ipairs({K_RHOLD, K_RREL}) do
  for _, id in ipairs(redis.call('SMEMBERS', set)) do
    if not given[id] then return {'moved'} end
  end
end

local function bget(id, field) return redis.call('HGET', given[id].booking, field) end

local function bstate(id, state, reason, extra)
  local entry = extra or {}
  entry.event = 'vendor'
  entry.op = op_id
  booking_state(ctx, given[id].booking, given[id].bhist, K_ACTIVE, K_OUTBOX, id, state, reason,
    entry)
end

local function fail_booking(id, reason)
  local b = hgetall(given[id].booking)
  local nxt = next_action(b, id)
  if nxt ~= '' then
    redis.call('ZREM', K_DUE, nxt)
    redis.call('ZREM', K_INFLIGHT, nxt)
  end
  bput(given[id].booking, 'nx', '', 'na', '', 'hr', '', 'cd', code, 'ms', message,
    'tr', cjson.encode({call = kind, attempts = tonumber(r.attempts) or 0, last_code = code,
      last_message = message}))
  bstate(id, 'failed', reason, {code = code, message = message})
  dead_letter(ctx, K_DL_SEQ, K_DL_ENTRIES, K_DL_INDEX, {request = booking_request(b, id),
    booking_id = id, room_id = room_id, error = 'vendor', code = code, message = reason})
end

local function clear_op(state)
  redis.call('HSET', K_ROOM, 'state', state, 'op_id', '', 'op_kind', '', 'call_token', '',
    'call_deadline', '', 'attempts', 0, 'uncertain', 0, 'possibly', 0, 'changed_at', now)
  redis.call('ZREM', K_INFLIGHT, op_id)
  redis.call('ZREM', K_DUE, op_id)
end

if outcome == 'lost' then
  outcome = 'retry'
  r.uncertain = '1'
  redis.call('HSET', K_ROOM, 'uncertain', '1')
end

room_note(ctx, K_RHIST, {event = 'reply', op = op_id, kind = kind, attempt = tonumber(r.attempts),
  outcome = outcome, code = code, message = message, uncertain = r.uncertain == '1'})

if outcome == 'retry' then
  local retry_at = tonumber(ARGV[7])
  local useful
  if kind == 'start' then
    useful = redis.call('SCARD', K_RHOLD) > 0
  else
    useful = retry_at <= tonumber(r.op_started_at) + stop_retry
  end
  if useful then
    redis.call('HSET', K_ROOM, 'call_token', '', 'call_deadline', '', 'last_code', code,
      'last_message', message)
    redis.call('ZREM', K_INFLIGHT, op_id)
    redis.call('ZADD', K_DUE, retry_at, op_id)
    local waiting = redis.call('SMEMBERS', K_RHOLD)
    if kind == 'stop' then waiting = redis.call('SMEMBERS', K_RREL) end
    for _, id in ipairs(waiting) do
      note(ctx, given[id].bhist, {event = 'vendor', op = op_id, outcome = 'retry', code = code,
        message = message, retry_at = retry_at})
    end
    return {'retry', kind, '[]', '', '', '', ARGV[7]}
  end
  outcome = 'fail'
  if kind == 'start' then
    message = 'no booking holds the room any more; last error: ' .. message
  else
    message = 'gave up after STOP_RETRY_S; last error: ' .. message
  end
end
if outcome == 'abandon' then
  outcome = 'fail'
  code = r.last_code or 'abandoned'
  if code == '' then code = 'abandoned' end
  message = 'the window ended before the start succeeded; last error: ' ..
    (r.last_message or 'none')
end

local possibly = false
if outcome == 'fail' or outcome == 'abandon' then
  if kind == 'start' and r.uncertain == '1' then
    possibly = true
  elseif kind == 'stop' and (r.possibly == '1' or r.uncertain == '1') then
    -- After a lost stop reply, or for a room only possibly recording, a failure string most
    -- likely means "not recording": a stop cannot leave it running either way.
    outcome = 'already'
  end
end

local touched = {}
local verdict
-- The room records now: its starting holders are recording (told `how`), and the holders
-- already stopping are marked recorded, so their stop is owed. `fields`: more room fields.
local function room_recording(how, fields)
  clear_op('recording')
  redis.call('HSET', K_ROOM, 'since', now, unpack(fields))
  redis.call('ZADD', K_ROOMS, now, room_id)
  for _, id in ipairs(redis.call('SMEMBERS', K_RHOLD)) do
    if bget(id, 'st') == 'starting' then
      redis.call('HSET', given[id].booking, 'rc', '1')
      bstate(id, 'recording', how)
      touched[#touched + 1] = id
    end
  end
  for _, id in ipairs(redis.call('SMEMBERS', K_RREL)) do
    if bget(id, 'st') == 'stopping' then
      redis.call('HSET', given[id].booking, 'rc', '1')
    end
  end
end

if possibly then
  verdict = 'confirmed'
  local how = 'vendor: ' .. code .. ' after a lost reply: counted as possibly recording ' ..
    '(its stop stays owed)'
  room_recording(how, {'possibly', '1', 'last_code', code, 'last_message', message})
elseif outcome == 'ok' or outcome == 'already' then
  verdict = 'confirmed'
  local how = 'vendor: ok'
  if outcome == 'already' then
    if kind == 'start' then how = 'vendor: already recording' else how = 'vendor: not recording' end
    if kind == 'stop' and ARGV[4] ~= 'already' then
      how = 'vendor: ' .. code .. ' to a stop whose room may not record (harmless)'
    end
    if r.uncertain == '1' then
      how = how .. ' (after a lost reply: counted as done)'
    else
      how = how .. ' (counted as done)'
    end
  end
  if kind == 'start' then
    room_recording(how, {})
  else
    clear_op('idle')
    redis.call('HSET', K_ROOM, 'since', '')
    redis.call('ZREM', K_ROOMS, room_id)
    for _, id in ipairs(redis.call('SMEMBERS', K_RREL)) do
      if bget(id, 'st') == 'stopping' then
        local final = bget(id, 'fi') or ''
        if final == '' then final = 'stopped' end
        bstate(id, final, how)
        touched[#touched + 1] = id
      end
    end
    redis.call('DEL', K_RREL)
  end
else
  verdict = 'failed'
  if kind == 'start' then
    for _, id in ipairs(redis.call('SMEMBERS', K_RHOLD)) do
      if bget(id, 'st') == 'starting' then
        redis.call('SREM', K_RHOLD, id)
        redis.call('ZREM', K_ACTIVE, id)
        fail_booking(id, 'start failed: ' .. code .. ': ' .. message)
        touched[#touched + 1] = id
      end
    end
    clear_op('idle')
  else
    clear_op('idle')
    redis.call('HSET', K_ROOM, 'since', '')
    redis.call('ZREM', K_ROOMS, room_id)
  end
  for _, id in ipairs(redis.call('SMEMBERS', K_RREL)) do
    if bget(id, 'st') == 'stopping' then
      fail_booking(id, kind .. ' failed: ' .. code .. ': ' .. message)
      touched[#touched + 1] = id
    end
  end
  redis.call('DEL', K_RREL)
end

-- Continuation: the holders may want the other state by now.
local holders = redis.call('SCARD', K_RHOLD)
local rstate = redis.call('HGET', K_ROOM, 'state')
local next_kind, params = '', ''
if rstate == 'recording' and holders == 0 then
  next_kind, params = 'stop', (r.rec_params or '{}')
elseif rstate == 'idle' and holders > 0 then
  next_kind = 'start'
  params = bget(redis.call('SRANDMEMBER', K_RHOLD), 'pa') or '{}'
end
local opened = ''
if next_kind ~= '' then opened = next_op(room_id, next_kind, params, op_id) end
return {verdict, kind, cjson.encode(touched), opened, next_kind, params, ''}
