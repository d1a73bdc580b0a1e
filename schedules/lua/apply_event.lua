-- apply_event.lua: apply one booking event (schedule, start-now, cancel, stop-now) atomically.
--
-- Events for one booking never interleave: each is this one script. With updated_at, an event
-- older than the one already applied is refused and noted in the history; without it, events
-- apply in the order they reach Redis.
--
-- KEYS[1]  booking   hash  the booking (short fields: see schedules/state.py)
-- KEYS[2]  bhist     list  the booking's history (JSON entries; a new booking's first entry is
--                          written by its next transition, see first_note in lib.lua)
-- KEYS[3]  due       zset  action id -> due time
-- KEYS[4]  inflight  zset  action id -> lease deadline
-- KEYS[5]  active    zset  bookings holding a room -> stop due time
-- KEYS[6]  outbox    zset  booking events to publish downstream (see tell in lib.lua)
-- KEYS[7]  counts    hash  bookings per state (set_booking_state in lib.lua)
-- KEYS[8]  ended     zset  finished bookings by expiry time (retire_booking in lib.lua)
-- ARGV[1]  mode         schedule | start | cancel | stop
-- ARGV[2]  booking_id
-- ARGV[3]  now          epoch s (injected clock)
-- ARGV[4]  updated_at   epoch s, or "" when the event carries none
-- ARGV[5]  room_id      (schedule/start; "" otherwise)
-- ARGV[6]  start_at     epoch s as text (schedule/start)
-- ARGV[7]  end_at       epoch s as text (schedule/start)
-- ARGV[8]  start_due    start_at - WINDOW_LEAD_S
-- ARGV[9]  stop_due     end_at + WINDOW_TAIL_S
-- ARGV[10] params       JSON: what a vendor start needs (user_data, name_rule, path, room_type;
--                       nulls left out), "" when none
-- ARGV[11] raw          JSON object: each keyword argument received in another form than the
--                       stored one, name -> its JSON text (booking_request in lib.lua)
-- ARGV[12] retention_s  how long a finished booking and its history are kept
-- ARGV[13] history_max  entries kept per history list
-- ARGV[14] source       who sent the event (task name or "cli"), for the history
--
-- Returns {verdict, state, next_action, next_at, detail}; verdict is one of
-- applied | unchanged | stale (older updated_at, ignored) | ignored (nothing left to do).

local mode, bid, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
local upd = ARGV[4]
local ctx = {now = now, retention = tonumber(ARGV[12]), history_max = tonumber(ARGV[13]),
  counts = KEYS[7], ended = KEYS[8]}

local b = hgetall(KEYS[1])
local exists = b.st ~= nil
local state = b.st or ''
local holding = state == 'starting' or state == 'recording'
local seq = tonumber(b.sq or '0')
if exists then first_note(b, KEYS[1], KEYS[2], bid) end

local function event_note(entry)
  entry.event = mode
  entry.source = ARGV[14]
  if upd ~= '' then entry.updated_at = tonumber(upd) end
  note(ctx, KEYS[2], entry)
end

local function keep(terminal)
  if terminal then
    retire_booking(ctx, KEYS[1], KEYS[2], KEYS[5], bid)
  else
    redis.call('PERSIST', KEYS[1])
    redis.call('PERSIST', KEYS[2])
  end
end

local function drop_next()
  local id = next_action(b, bid)
  if id ~= '' then
    redis.call('ZREM', KEYS[3], id)
    redis.call('ZREM', KEYS[4], id)
  end
end

local function set_next(kind, at)
  seq = seq + 1
  local id = kind .. ':' .. bid .. ':' .. seq
  redis.call('ZADD', KEYS[3], at, id)
  redis.call('HSET', KEYS[1], 'sq', seq, 'nx', kind, 'na', at)
  return id
end

-- The event's keyword arguments that the stored fields do not give back as received.
local function set_raw()
  local fields = {}
  for field in pairs(b) do
    if string.sub(field, 1, 2) == 'k.' then fields[#fields + 1] = field end
  end
  if #fields > 0 then redis.call('HDEL', KEYS[1], unpack(fields)) end
  local raw = cjson.decode(ARGV[11])
  -- Without an updated_at the event leaves ua as it was, but it was received without one.
  if upd == '' and mode == 'schedule' and (b.ua or '') ~= '' and raw.updated_at == nil then
    raw.updated_at = 'null'
  end
  for name, text in pairs(raw) do
    redis.call('HSET', KEYS[1], 'k.' .. name, text)
  end
end

-- ua orders later events; an event that is not a window (cancel, stop, a start of a booking
-- holding its room) leaves the request as it was, so its updated_at is kept as received first.
local function set_ua()
  if upd == '' or upd == (b.ua or '') then return end
  if exists and (b.tk or '') == '' and b['k.updated_at'] == nil then
    redis.call('HSET', KEYS[1], 'k.updated_at', b.ua or 'null')
  end
  redis.call('HSET', KEYS[1], 'ua', upd)
end

local function reply(verdict, detail)
  local now_b = hgetall(KEYS[1])
  return {verdict, now_b.st or '', next_action(now_b, bid), now_b.na or '', detail}
end

if upd ~= '' and (b.ua or '') ~= '' and tonumber(upd) < tonumber(b.ua) then
  event_note({verdict = 'stale', applied_updated_at = tonumber(b.ua),
        detail = 'older than the event already applied; ignored'})
  return reply('stale', 'older than the event already applied')
end

if mode == 'cancel' or mode == 'stop' then
  if not exists then
    -- A tombstone: a schedule older than this cancel that arrives later must still lose.
    set_booking_state(ctx, KEYS[1], bid, 'cancelled')
    bput(KEYS[1], 'sq', 0, 'ua', upd, 'ca', now, 'ch', now,
      'rs', mode .. ' received before any schedule')
    tell(ctx, KEYS[6], KEYS[1], bid, mode .. ' received before any schedule')
    event_note({verdict = 'applied', state = 'cancelled',
      detail = 'unknown booking; tombstone kept'})
    keep(true)
    return reply('applied', 'unknown booking; tombstone kept')
  end
  set_ua()
  if state == 'scheduled' then
    drop_next()
    set_booking_state(ctx, KEYS[1], bid, 'cancelled')
    bput(KEYS[1], 'nx', '', 'na', '', 'ch', now,
      'rs', mode .. ' before the window started')
    tell(ctx, KEYS[6], KEYS[1], bid, mode .. ' before the window started')
    event_note({verdict = 'applied', from = state, state = 'cancelled'})
    keep(true)
    return reply('applied', 'pending window dropped')
  elseif holding then
    drop_next()
    local id = set_next('stop', now)
    local ending = 'stop'
    if mode == 'cancel' then ending = 'cancel' end
    redis.call('HSET', KEYS[1], 'en', ending, 'ch', now)
    event_note({verdict = 'applied', state = state, next = id, detail = 'release due now'})
    return reply('applied', 'release due now')
  elseif state == 'stopping' then
    if mode == 'cancel' then redis.call('HSET', KEYS[1], 'fi', 'cancelled') end
    event_note({verdict = 'applied', state = state, detail = 'already stopping'})
    return reply('applied', 'already stopping')
  end
  event_note({verdict = 'ignored', state = state, detail = 'already ' .. state})
  return reply('ignored', 'already ' .. state)
end

-- schedule / start
local room = ARGV[5]
local start_due, stop_due = tonumber(ARGV[8]), tonumber(ARGV[9])
local task = ''
if mode == 'start' then task = 'start' end
if mode == 'start' and holding then
  set_ua()
  event_note({verdict = 'unchanged', state = state, detail = 'already holding the room'})
  return reply('unchanged', 'already holding the room')
end
if exists and b.rm == room and b.sa == ARGV[6] and b.ea == ARGV[7]
    and (b.pa or '') == ARGV[10] and b.sd == ARGV[8] and b.ed == ARGV[9]
    and (state == 'scheduled' or (holding and (b.en or '') == '')) then
  if upd ~= '' then redis.call('HSET', KEYS[1], 'ua', upd) end
  bput(KEYS[1], 'tk', task)
  set_raw()
  event_note({verdict = 'unchanged', state = state})
  return reply('unchanged', 'same window')
end

bput(KEYS[1], 'rm', room, 'sa', ARGV[6], 'ea', ARGV[7], 'sd', ARGV[8], 'ed', ARGV[9],
  'pa', ARGV[10], 'tk', task, 'ch', now, 'rs', '', 'cd', '', 'ms', '')
set_raw()
if not exists then redis.call('HSET', KEYS[1], 'ca', now) end
if upd ~= '' then redis.call('HSET', KEYS[1], 'ua', upd) end
drop_next()

local detail
local id
if holding then
  if b.hr == room and start_due <= now then
    id = set_next('stop', stop_due)
    bput(KEYS[1], 'en', '')
    redis.call('ZADD', KEYS[5], stop_due, bid)
    detail = 'window changed while holding the room; stop moved'
  else
    -- Moved to the future or to another room: release now, start again at the new window.
    id = set_next('stop', now)
    redis.call('HSET', KEYS[1], 'en', 'restart')
    detail = 'window moved while holding the room; release now, start again at the new window'
  end
else
  id = set_next('start', start_due)
  set_booking_state(ctx, KEYS[1], bid, 'scheduled')
  bput(KEYS[1], 'en', '', 'fi', '', 'rc', '', 'ra', '', 'ro', '', 'tr', '')
  detail = 'start pending'
end
if exists then
  event_note({verdict = 'applied', from = state, state = redis.call('HGET', KEYS[1], 'st'),
        next = id, window = {tonumber(ARGV[6]), tonumber(ARGV[7])}, room_id = room,
        detail = detail})
else
  -- A new booking: its history starts at its next transition (first_entry in lib.lua), so a
  -- pending booking is one small hash. h0 keeps the event's source ("-": the task's own name).
  local source = ARGV[14]
  if source == 'recordings.' .. mode then source = '-' end
  redis.call('HSET', KEYS[1], 'h0', source)
end
keep(false)
return reply('applied', detail)
