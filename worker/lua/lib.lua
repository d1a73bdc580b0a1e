-- lib.lua: helpers shared by every Lua script of the product. The one loader (worker/redis.py)
-- prepends this file to each script, so a helper is written once. Helpers take every key they
-- touch as an argument: scripts pass on keys from their KEYS, never build key names.
--
-- The lifecycle helpers take `ctx`, a table {now, history_max, retention, counts, ended} the
-- script builds from its ARGV and KEYS: the injected clock, the entries kept per history list,
-- how long finished bookings and quiet room histories are kept (s), and the two keys every
-- booking state write adjusts (see set_booking_state): `counts` (hash state -> bookings) and
-- `ended` (zset "<state>:<booking_id>" -> when the finished booking's hash expires).

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

-- The booking hash `lc:b:<booking_id>` keeps short field names and no empty field, so that a
-- pending booking stays a small listpack (see the field table in schedules/state.py). Its id is
-- the key's, never a field: scripts take it from ARGV or from the action id.

-- bput(key, field, value, ...): set each field whose value is not empty, delete each that is.
local function bput(key, ...)
  local args, set, del = {...}, {}, {}
  for i = 1, select('#', ...), 2 do
    local f, v = args[i], args[i + 1]
    if v == nil or v == '' then del[#del + 1] = f else set[#set + 1] = f; set[#set + 1] = v end
  end
  if #set > 0 then redis.call('HSET', key, unpack(set)) end
  if #del > 0 then redis.call('HDEL', key, unpack(del)) end
end

-- States a booking ends in: its hash then expires after ctx.retention (retire_booking).
local ENDED = {stopped = true, failed = true, cancelled = true}

-- set_booking_state(ctx, booking, bid, state): the one write of a booking's state (field st of
-- the hash `booking`), which keeps the per-state counts exact in the same step: old state -1,
-- new +1 in ctx.counts. A booking leaving an end state leaves ctx.ended (it will not expire);
-- a booking created where one of the same id expired unpruned takes that one's count away
-- first, since the expired hash is no longer counted by anything else.
local function set_booking_state(ctx, booking, bid, state)
  local old = redis.call('HGET', booking, 'st')
  if old == state then return end
  if old then
    redis.call('HINCRBY', ctx.counts, old, -1)
    if ENDED[old] then redis.call('ZREM', ctx.ended, old .. ':' .. bid) end
  else
    for ended in pairs(ENDED) do
      if redis.call('ZREM', ctx.ended, ended .. ':' .. bid) == 1 then
        redis.call('HINCRBY', ctx.counts, ended, -1)
      end
    end
  end
  redis.call('HSET', booking, 'st', state)
  redis.call('HINCRBY', ctx.counts, state, 1)
end

-- next_action(b, bid): the id of the booking's pending action (kind nx, counter sq), or "".
local function next_action(b, bid)
  if (b.nx or '') == '' then return '' end
  return b.nx .. ':' .. bid .. ':' .. b.sq
end

-- action_subject(action_id): the booking (or room) id inside <kind>:<id>:<seq>.
local function action_subject(aid)
  local first = string.find(aid, ':', 1, true)
  local last = #aid - string.find(string.reverse(aid), ':', 1, true) + 1
  return string.sub(aid, first + 1, last - 1)
end

-- The keyword arguments of each task a booking's request can be (the contract's order;
-- tests/unit/test_booking_layout.py holds them to anyrtc_recorder_client/contract.py).
local REQUEST_KWARGS = {
  schedule = {'booking_id', 'room_id', 'start_at', 'end_at', 'user_data', 'name_rule', 'path',
    'room_type', 'updated_at'},
  start = {'room_id', 'booking_id', 'user_data', 'name_rule', 'path', 'room_type'},
}

-- booking_request(b, bid): the event the booking hash `b` was last scheduled by, as the JSON
-- text {"task":..., "kwargs":...} (for dead letters and booking.v1). It is rebuilt from the
-- stored window and params; a keyword argument received in another form than the stored one
-- (an ISO time, a booking id left out) was kept as JSON text in field "k.<name>" and is spliced
-- in verbatim.
local function booking_request(b, bid)
  local kind = b.tk or 'schedule'
  local params = cjson.decode(b.pa or '{}')
  local derived = {booking_id = cjson.encode(bid), room_id = cjson.encode(b.rm or ''),
    start_at = b.sa or 'null', end_at = b.ea or 'null', updated_at = b.ua or 'null'}
  for _, name in ipairs({'user_data', 'name_rule', 'path', 'room_type'}) do
    if params[name] == nil then derived[name] = 'null' else derived[name] = cjson.encode(params[name]) end
  end
  local parts = {}
  for _, name in ipairs(REQUEST_KWARGS[kind]) do
    parts[#parts + 1] = cjson.encode(name) .. ':' .. (b['k.' .. name] or derived[name])
  end
  return '{"task":"recordings.' .. kind .. '","kwargs":{' .. table.concat(parts, ',') .. '}}'
end

-- first_entry(b, bid): the history entry of the event that created the booking hash `b`. It is
-- not written when the booking is scheduled (a pending booking has no history list; field h0
-- holds the event's source, "-" for the task's own name) but by the booking's next transition
-- (first_note), so rebuilding it from the fields that event wrote is exact until then.
-- schedules/state.py builds the same entry for a history read before that.
local function first_entry(b, bid)
  local kind = b.tk or 'schedule'
  local source = b.h0
  if source == '-' then source = 'recordings.' .. kind end
  local entry = {event = kind, source = source, verdict = 'applied', from = '',
    state = 'scheduled', next = 'start:' .. bid .. ':' .. b.sq,
    window = {tonumber(b.sa), tonumber(b.ea)}, room_id = b.rm, detail = 'start pending',
    at = tonumber(b.ca)}
  if (b.ua or '') ~= '' then entry.updated_at = tonumber(b.ua) end
  return entry
end

-- first_note(b, booking, bhist, bid): before a booking's next transition changes its hash
-- `booking` (read as `b` at the script's start), write its deferred first entry to `bhist`.
local function first_note(b, booking, bhist, bid)
  if b.h0 == nil then return end
  redis.call('RPUSH', bhist, cjson.encode(first_entry(b, bid)))
  redis.call('HDEL', booking, 'h0')
end

-- retire_booking(ctx, booking, bhist, active, booking_id): a booking reached a final state:
-- it leaves the `active` zset, and its hash `booking` and history `bhist` expire after
-- ctx.retention.
local function retire_booking(ctx, booking, bhist, active, booking_id)
  redis.call('ZREM', active, booking_id)
  redis.call('EXPIRE', booking, ctx.retention)
  redis.call('EXPIRE', bhist, ctx.retention)
  -- Its count must drop when the hash expires: prune_ended.lua does it from this zset.
  local state = redis.call('HGET', booking, 'st') or ''
  redis.call('ZADD', ctx.ended, ctx.now + ctx.retention, state .. ':' .. booking_id)
end

-- States a booking system acts on: entering one queues a booking.v1 message (see tell).
local TOLD = {recording = true, stopped = true, failed = true, cancelled = true}

-- tell(ctx, outbox, booking, bid, reason): if the booking hash `booking` (of booking `bid`) is
-- now in a state of TOLD, add the transition's facts (JSON) to the zset `outbox`, scored by
-- ctx.now in ms, in this same atomic step: the discovery worker publishes each member once
-- (worker/discovery/booking_outbox.py), so a crash between the transition and the publish
-- loses nothing. The message id counts the booking's told transitions and carries the time, so
-- it never repeats, not even for a booking id used again after its hash expired.
local function tell(ctx, outbox, booking, bid, reason)
  local b = hgetall(booking)
  if not TOLD[b.st or ''] then return end
  local told = redis.call('HINCRBY', booking, 'tl', 1)
  local at_ms = math.floor(ctx.now * 1000)
  local room = b.rm or ''
  if (b.hr or '') ~= '' then room = b.hr end
  local facts = {message_id = 'bk:' .. bid .. ':' .. told .. ':' .. at_ms, at = ctx.now,
    booking_id = bid, room_id = room, state = b.st, reason = reason or '',
    code = b.cd or '', message = b.ms or '', tried = b.tr or '',
    start_at = b.sa or '', end_at = b.ea or '', started_at = b.ra or '',
    stopped_at = b.ro or '', params = b.pa or '{}', request = booking_request(b, bid)}
  redis.call('ZADD', outbox, at_ms, cjson.encode(facts))
end

-- booking_state(ctx, booking, bhist, active, outbox, booking_id, state, reason, entry): set the
-- booking hash `booking` to `state` (with reason and changed_at) and note the transition in its
-- history `bhist`; `entry` (a table, may be nil) carries the event's own fields. The actual
-- recording times are kept (ra on entering recording, ro when a recorded booking stops), and a
-- state a booking system acts on is told through `outbox` (see tell). A final state retires
-- the booking (see retire_booking; `active` is the active zset).
local function booking_state(ctx, booking, bhist, active, outbox, booking_id, state, reason,
    entry)
  entry = entry or {}
  entry.from = redis.call('HGET', booking, 'st')
  entry.state = state
  if reason and reason ~= '' then entry.detail = reason end
  set_booking_state(ctx, booking, booking_id, state)
  bput(booking, 'ch', ctx.now, 'rs', reason or '')
  if state == 'recording' then
    bput(booking, 'ra', ctx.now, 'ro', '')
  elseif (state == 'stopped' or state == 'cancelled')
      and (redis.call('HGET', booking, 'ra') or '') ~= '' then
    redis.call('HSET', booking, 'ro', ctx.now)
  end
  note(ctx, bhist, entry)
  tell(ctx, outbox, booking, booking_id, reason)
  if ENDED[state] then
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
