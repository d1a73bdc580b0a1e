-- lib.lua: helpers shared by every Lua script of the product. The one loader (worker/redis.py)
-- prepends this file to each script, so a helper is written once. Helpers take every key they
-- touch as an argument: scripts pass on keys from their KEYS, never build key names.
--
-- The lifecycle helpers take `ctx`, a table {now, history_max, retention} the script builds
-- from its ARGV: the injected clock, the entries kept per history list, and how long finished
-- bookings and quiet room histories are kept (s).

-- hgetall(key): HGETALL as a Lua table (field -> value).
local function hgetall(key)
  local flat = redis.call('HGETALL', key)
  local t = {}
  for i = 1, #flat, 2 do t[flat[i]] = flat[i + 1] end
  return t
end

-- note(ctx, list, entry): append entry, stamped at = ctx.now, to the history list `list`,
-- keeping its newest ctx.history_max entries.
local function note(ctx, list, entry)
  entry.at = ctx.now
  redis.call('RPUSH', list, cjson.encode(entry))
  redis.call('LTRIM', list, -ctx.history_max, -1)
end

-- room_note(ctx, rhist, entry): note to the room history `rhist`, which then lives
-- ctx.retention past its newest entry (the room hash, small, stays: its op_seq must never
-- repeat).
local function room_note(ctx, rhist, entry)
  note(ctx, rhist, entry)
  redis.call('EXPIRE', rhist, ctx.retention)
end

-- retire_booking(ctx, booking, bhist, active, booking_id): a booking reached a final state:
-- it leaves the `active` zset, and its hash `booking` and history `bhist` expire after
-- ctx.retention.
local function retire_booking(ctx, booking, bhist, active, booking_id)
  redis.call('ZREM', active, booking_id)
  redis.call('EXPIRE', booking, ctx.retention)
  redis.call('EXPIRE', bhist, ctx.retention)
end

-- States a booking system acts on: entering one queues a booking.v1 message (see tell).
local TOLD = {recording = true, stopped = true, failed = true, cancelled = true}

-- tell(ctx, outbox, booking, reason): if the booking hash `booking` is now in a state of TOLD,
-- add the transition's facts (JSON) to the zset `outbox`, scored by ctx.now in ms, in this same
-- atomic step: the discovery worker publishes each member once (worker/discovery/
-- booking_outbox.py), so a crash between the transition and the publish loses nothing. The
-- message id counts the booking's told transitions and carries the time, so it never repeats,
-- not even for a booking id used again after its hash expired.
local function tell(ctx, outbox, booking, reason)
  local b = hgetall(booking)
  if not TOLD[b.state or ''] then return end
  local told = redis.call('HINCRBY', booking, 'told', 1)
  local at_ms = math.floor(ctx.now * 1000)
  local room = b.room_id or ''
  if (b.held_room or '') ~= '' then room = b.held_room end
  local facts = {message_id = 'bk:' .. b.booking_id .. ':' .. told .. ':' .. at_ms, at = ctx.now,
    booking_id = b.booking_id, room_id = room, state = b.state, reason = reason or '',
    code = b.code or '', message = b.message or '', tried = b.tried or '',
    start_at = b.start_at or '', end_at = b.end_at or '', started_at = b.rec_started_at or '',
    stopped_at = b.rec_stopped_at or '', params = b.params or '{}', request = b.request or '{}'}
  redis.call('ZADD', outbox, at_ms, cjson.encode(facts))
end

-- booking_state(ctx, booking, bhist, active, outbox, booking_id, state, reason, entry): set the
-- booking hash `booking` to `state` (with reason and changed_at) and note the transition in its
-- history `bhist`; `entry` (a table, may be nil) carries the event's own fields. The actual
-- recording times are kept (rec_started_at on entering recording, rec_stopped_at when a
-- recorded booking stops), and a state a booking system acts on is told through `outbox`
-- (see tell). A final state retires the booking (see retire_booking; `active` is the active
-- zset).
local function booking_state(ctx, booking, bhist, active, outbox, booking_id, state, reason,
    entry)
  entry = entry or {}
  entry.from = redis.call('HGET', booking, 'state')
  entry.state = state
  if reason and reason ~= '' then entry.detail = reason end
  redis.call('HSET', booking, 'state', state, 'changed_at', ctx.now, 'reason', reason or '')
  if state == 'recording' then
    redis.call('HSET', booking, 'rec_started_at', ctx.now, 'rec_stopped_at', '')
  elseif (state == 'stopped' or state == 'cancelled')
      and (redis.call('HGET', booking, 'rec_started_at') or '') ~= '' then
    redis.call('HSET', booking, 'rec_stopped_at', ctx.now)
  end
  note(ctx, bhist, entry)
  tell(ctx, outbox, booking, reason)
  if state == 'stopped' or state == 'failed' or state == 'cancelled' then
    retire_booking(ctx, booking, bhist, active, booking_id)
  end
end

-- dead_letter(ctx, seq, entries, index, d): store a dead-letter entry of the shape
-- schedules/deadletters.py reads: id from the counter `seq`, JSON in the hash `entries`, id
-- indexed by creation time in the zset `index`. `d`: request (the booking's request JSON),
-- booking_id, room_id, error, code, message. Returns the entry id.
local function dead_letter(ctx, seq, entries, index, d)
  local id = tostring(redis.call('INCR', seq))
  local req = cjson.decode(d.request or '{}')
  local entry = {id = id, created_at = ctx.now, task = req.task or 'recordings.schedule',
    kwargs = req.kwargs or {}, error = d.error, code = d.code, message = d.message,
    booking_id = d.booking_id, room_id = d.room_id, replayed_at = cjson.null,
    replay = cjson.null}
  redis.call('HSET', entries, id, cjson.encode(entry))
  redis.call('ZADD', index, ctx.now, id)
  return id
end

-- open_op(ctx, room, inflight, rhist, o): open the next vendor operation op:<room_id>:<n> of
-- the room hash `room` and begin its first call attempt: leased in the zset `inflight` for
-- o.lease s under o.token, noted in the room history `rhist`. `o`: room_id, kind (start |
-- stop), params (JSON, kept as rec_params by a start), by (who opened it), token, lease,
-- detail (optional, for the history). Returns the operation id.
local function open_op(ctx, room, inflight, rhist, o)
  local n = redis.call('HINCRBY', room, 'op_seq', 1)
  local op_id = 'op:' .. o.room_id .. ':' .. n
  local rstate = 'starting'
  if o.kind == 'stop' then rstate = 'stopping' end
  redis.call('HSET', room, 'room_id', o.room_id, 'state', rstate, 'op_id', op_id,
    'op_kind', o.kind, 'op_started_at', ctx.now, 'op_by', o.by, 'call_token', o.token,
    'call_deadline', ctx.now + o.lease, 'attempts', 1, 'uncertain', 0, 'changed_at', ctx.now)
  if o.kind == 'start' then redis.call('HSET', room, 'rec_params', o.params) end
  redis.call('ZADD', inflight, ctx.now + o.lease, op_id)
  room_note(ctx, rhist, {event = 'op', op = op_id, kind = o.kind, by = o.by, detail = o.detail})
  return op_id
end

-- discovery helpers

-- ARGV "now" of a discovery script as whole epoch milliseconds. A missing or non-numeric value
-- is an error reply: a caller that forgot it must not schedule against time 0.
local function now_ms(arg)
  local ms = tonumber(arg)
  if ms == nil then
    error({err = 'ERR now_ms must be epoch milliseconds, got ' .. tostring(arg)})
  end
  return math.floor(ms)
end
