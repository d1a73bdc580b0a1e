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
-- ARGV[1]  op_id
-- ARGV[2]  call_token of the attempt ("" to settle an abandoned start, see begin_call.lua)
-- ARGV[3]  now (epoch s, injected clock)
-- ARGV[4]  outcome: ok | already | retry | fail | abandon
-- ARGV[5]  vendor code    ARGV[6] vendor message
-- ARGV[7]  retry_at (epoch s; used when outcome is retry)
-- ARGV[8]  lease_s        ARGV[9] token for the next operation's first attempt
-- ARGV[10] booking key prefix   ARGV[11] booking history key prefix
-- ARGV[12] retention_s    ARGV[13] stop_retry_s   ARGV[14] history_max
-- ARGV[15] the attempt's kind (start | stop)   ARGV[16] its params (JSON)
--
-- Per-booking keys of the room's holders are derived from ARGV[10]/ARGV[11] + booking id:
-- the holders are only known here.
--
-- A stale "ok" to a start (the vendor started the room for an attempt that was taken over) in a
-- room that is idle with no holder would leave the vendor recording for nobody: a stop
-- operation is opened for it, as the next operation of the stale reply.
--
-- Returns {verdict, kind, bookings_json, next_op_id, next_kind, next_params_json, retry_at}
--   verdict: stale | confirmed | retry | failed
--   bookings_json: confirmed (now recording / finished) or failed booking ids
--   next_*: "" unless a next operation was opened (the caller calls the vendor for it)

local op_id, token, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
local outcome, code, message = ARGV[4], ARGV[5], ARGV[6]
local lease = tonumber(ARGV[8])
local bprefix, hprefix = ARGV[10], ARGV[11]
local retention, stop_retry, history_max = tonumber(ARGV[12]), tonumber(ARGV[13]),
  tonumber(ARGV[14])

local function open_op(room_id, kind, params, by)
  local n = redis.call('HINCRBY', KEYS[1], 'op_seq', 1)
  local id = 'op:' .. room_id .. ':' .. n
  local state = 'starting'
  if kind == 'stop' then state = 'stopping' end
  redis.call('HSET', KEYS[1], 'state', state, 'op_id', id, 'op_kind', kind,
    'op_started_at', now, 'op_by', by, 'call_token', ARGV[9], 'call_deadline', now + lease,
    'attempts', 1, 'uncertain', 0)
  if kind == 'start' then redis.call('HSET', KEYS[1], 'rec_params', params) end
  redis.call('ZADD', KEYS[5], now + lease, id)
  return id
end

local flat = redis.call('HGETALL', KEYS[1])
local r = {}
for i = 1, #flat, 2 do r[flat[i]] = flat[i + 1] end

local function note(key, entry)
  entry.at = now
  redis.call('RPUSH', key, cjson.encode(entry))
  redis.call('LTRIM', key, -history_max, -1)
end

-- The room's history outlives the room's last event by the retention, then goes (the room hash,
-- small, stays: its op_seq must never repeat).
local function room_note(entry)
  note(KEYS[4], entry)
  redis.call('EXPIRE', KEYS[4], retention)
end

if (r.op_id or '') ~= op_id or (r.call_token or '') ~= token then
  -- A reply to an attempt that was taken over (or settled) changes nothing; keep it visible.
  room_note({event = 'late_reply', op = op_id, outcome = outcome, code = code,
    message = message})
  local idle = (r.state or 'idle') == 'idle' and (r.op_id or '') == ''
  if ARGV[15] == 'start' and outcome == 'ok' and idle and r.room_id
      and redis.call('SCARD', KEYS[2]) == 0 then
    local stop_op = open_op(r.room_id, 'stop', ARGV[16], op_id)
    room_note({event = 'op', op = stop_op, kind = 'stop', by = op_id,
      detail = 'the vendor started the room after it was released: stop it'})
    return {'stale', '', '[]', stop_op, 'stop', ARGV[16], ''}
  end
  return {'stale', '', '[]', '', '', '', ''}
end
local kind, room_id = r.op_kind, r.room_id

local function bget(id, field) return redis.call('HGET', bprefix .. id, field) end

local function bstate(id, state, reason, extra)
  local key = bprefix .. id
  local entry = extra or {}
  entry.event = 'vendor'
  entry.op = op_id
  entry.from = bget(id, 'state')
  entry.state = state
  if reason and reason ~= '' then entry.detail = reason end
  redis.call('HSET', key, 'state', state, 'changed_at', now, 'reason', reason or '')
  note(hprefix .. id, entry)
  if state == 'stopped' or state == 'failed' or state == 'cancelled' then
    redis.call('ZREM', KEYS[7], id)
    redis.call('EXPIRE', key, retention)
    redis.call('EXPIRE', hprefix .. id, retention)
  end
end

local function fail_booking(id, reason)
  local key = bprefix .. id
  local nxt = bget(id, 'next') or ''
  if nxt ~= '' then
    redis.call('ZREM', KEYS[6], nxt)
    redis.call('ZREM', KEYS[5], nxt)
  end
  redis.call('HSET', key, 'next', '', 'next_at', '', 'held_room', '', 'code', code,
    'message', message)
  bstate(id, 'failed', reason, {code = code, message = message})
  local dl = tostring(redis.call('INCR', KEYS[11]))
  local req = cjson.decode(bget(id, 'request') or '{}')
  local entry = {id = dl, created_at = now, task = req.task or 'recordings.schedule',
    kwargs = req.kwargs or {}, error = 'vendor', code = code, message = reason,
    booking_id = id, room_id = room_id, replayed_at = cjson.null, replay = cjson.null}
  redis.call('HSET', KEYS[9], dl, cjson.encode(entry))
  redis.call('ZADD', KEYS[10], now, dl)
end

local function clear_op(state)
  redis.call('HSET', KEYS[1], 'state', state, 'op_id', '', 'op_kind', '', 'call_token', '',
    'call_deadline', '', 'attempts', 0, 'uncertain', 0, 'changed_at', now)
  redis.call('ZREM', KEYS[5], op_id)
  redis.call('ZREM', KEYS[6], op_id)
end

room_note({event = 'reply', op = op_id, kind = kind, attempt = tonumber(r.attempts),
  outcome = outcome, code = code, message = message, uncertain = r.uncertain == '1'})

if outcome == 'retry' then
  local retry_at = tonumber(ARGV[7])
  local useful
  if kind == 'start' then
    useful = redis.call('SCARD', KEYS[2]) > 0
  else
    useful = retry_at <= tonumber(r.op_started_at) + stop_retry
  end
  if useful then
    redis.call('HSET', KEYS[1], 'call_token', '', 'call_deadline', '', 'last_code', code,
      'last_message', message)
    redis.call('ZREM', KEYS[5], op_id)
    redis.call('ZADD', KEYS[6], retry_at, op_id)
    local waiting = redis.call('SMEMBERS', KEYS[2])
    if kind == 'stop' then waiting = redis.call('SMEMBERS', KEYS[3]) end
    for _, id in ipairs(waiting) do
      note(hprefix .. id, {event = 'vendor', op = op_id, outcome = 'retry', code = code,
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

local touched = {}
local verdict
if outcome == 'ok' or outcome == 'already' then
  verdict = 'confirmed'
  local how = 'vendor: ok'
  if outcome == 'already' then
    if kind == 'start' then how = 'vendor: already recording' else how = 'vendor: not recording' end
    if r.uncertain == '1' then
      how = how .. ' (after a lost reply: counted as done)'
    else
      how = how .. ' (counted as done)'
    end
  end
  if kind == 'start' then
    clear_op('recording')
    redis.call('HSET', KEYS[1], 'since', now)
    redis.call('ZADD', KEYS[8], now, room_id)
    for _, id in ipairs(redis.call('SMEMBERS', KEYS[2])) do
      if bget(id, 'state') == 'starting' then
        redis.call('HSET', bprefix .. id, 'recorded', '1')
        bstate(id, 'recording', how)
        touched[#touched + 1] = id
      end
    end
    for _, id in ipairs(redis.call('SMEMBERS', KEYS[3])) do
      if bget(id, 'state') == 'stopping' then redis.call('HSET', bprefix .. id, 'recorded', '1') end
    end
  else
    clear_op('idle')
    redis.call('HSET', KEYS[1], 'since', '')
    redis.call('ZREM', KEYS[8], room_id)
    for _, id in ipairs(redis.call('SMEMBERS', KEYS[3])) do
      if bget(id, 'state') == 'stopping' then
        local final = bget(id, 'final') or ''
        if final == '' then final = 'stopped' end
        bstate(id, final, how)
        touched[#touched + 1] = id
      end
    end
    redis.call('DEL', KEYS[3])
  end
else
  verdict = 'failed'
  if kind == 'start' then
    for _, id in ipairs(redis.call('SMEMBERS', KEYS[2])) do
      if bget(id, 'state') == 'starting' then
        redis.call('SREM', KEYS[2], id)
        redis.call('ZREM', KEYS[7], id)
        fail_booking(id, 'start failed: ' .. code .. ': ' .. message)
        touched[#touched + 1] = id
      end
    end
    clear_op('idle')
  else
    clear_op('idle')
    redis.call('HSET', KEYS[1], 'since', '')
    redis.call('ZREM', KEYS[8], room_id)
  end
  for _, id in ipairs(redis.call('SMEMBERS', KEYS[3])) do
    if bget(id, 'state') == 'stopping' then
      fail_booking(id, kind .. ' failed: ' .. code .. ': ' .. message)
      touched[#touched + 1] = id
    end
  end
  redis.call('DEL', KEYS[3])
end

-- Continuation: the holders may want the other state by now.
local holders = redis.call('SCARD', KEYS[2])
local rstate = redis.call('HGET', KEYS[1], 'state')
local next_kind, params = '', ''
if rstate == 'recording' and holders == 0 then
  next_kind, params = 'stop', (r.rec_params or '{}')
elseif rstate == 'idle' and holders > 0 then
  next_kind = 'start'
  params = bget(redis.call('SRANDMEMBER', KEYS[2]), 'params') or '{}'
end
local next_op = ''
if next_kind ~= '' then
  next_op = open_op(room_id, next_kind, params, op_id)
  room_note({event = 'op', op = next_op, kind = next_kind, by = op_id})
end
return {verdict, kind, cjson.encode(touched), next_op, next_kind, params, ''}
