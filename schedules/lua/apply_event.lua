-- apply_event.lua: apply one booking event (schedule, start-now, cancel, stop-now) atomically.
--
-- Events for one booking never interleave: each is this one script. With updated_at, an event
-- older than the one already applied is refused and noted in the history; without it, events
-- apply in the order they reach Redis.
--
-- KEYS[1]  booking   hash  the booking (fields: see schedules/state.py)
-- KEYS[2]  bhist     list  the booking's history (JSON entries)
-- KEYS[3]  due       zset  action id -> due time
-- KEYS[4]  inflight  zset  action id -> lease deadline
-- KEYS[5]  active    zset  bookings holding a room -> stop due time
-- KEYS[6]  outbox    zset  booking events to publish downstream (see tell in lib.lua)
-- ARGV[1]  mode         schedule | start | cancel | stop
-- ARGV[2]  booking_id
-- ARGV[3]  now          epoch s (injected clock)
-- ARGV[4]  updated_at   epoch s, or "" when the event carries none
-- ARGV[5]  room_id      (schedule/start; "" otherwise)
-- ARGV[6]  start_at     epoch s as text (schedule/start)
-- ARGV[7]  end_at       epoch s as text (schedule/start)
-- ARGV[8]  start_due    start_at - WINDOW_LEAD_S
-- ARGV[9]  stop_due     end_at + WINDOW_TAIL_S
-- ARGV[10] params       JSON: what a vendor start needs (user_data, name_rule, path, room_type)
-- ARGV[11] request      JSON {"task":..., "kwargs":...}: the event as received, for replay
-- ARGV[12] retention_s  how long a finished booking and its history are kept
-- ARGV[13] history_max  entries kept per history list
-- ARGV[14] source       who sent the event (task name or "cli"), for the history
--
-- Returns {verdict, state, next_action, next_at, detail}; verdict is one of
-- applied | unchanged | stale (older updated_at, ignored) | ignored (nothing left to do).

local mode, bid, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
local upd = ARGV[4]
local ctx = {now = now, retention = tonumber(ARGV[12]), history_max = tonumber(ARGV[13])}

local b = hgetall(KEYS[1])
local exists = b.state ~= nil
local state = b.state or ''
local holding = state == 'starting' or state == 'recording'
local seq = tonumber(b.seq or '0')

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
  if b.next and b.next ~= '' then
    redis.call('ZREM', KEYS[3], b.next)
    redis.call('ZREM', KEYS[4], b.next)
  end
end

local function set_next(kind, at)
  seq = seq + 1
  local id = kind .. ':' .. bid .. ':' .. seq
  redis.call('ZADD', KEYS[3], at, id)
  redis.call('HSET', KEYS[1], 'seq', seq, 'next', id, 'next_at', at)
  return id
end

local function reply(verdict, detail)
  local now_state = redis.call('HGET', KEYS[1], 'state') or ''
  local nxt = redis.call('HGET', KEYS[1], 'next') or ''
  local nxt_at = redis.call('HGET', KEYS[1], 'next_at') or ''
  return {verdict, now_state, nxt, nxt_at, detail}
end

if upd ~= '' and (b.updated_at or '') ~= '' and tonumber(upd) < tonumber(b.updated_at) then
  event_note({verdict = 'stale', applied_updated_at = tonumber(b.updated_at),
        detail = 'older than the event already applied; ignored'})
  return reply('stale', 'older than the event already applied')
end

if mode == 'cancel' or mode == 'stop' then
  if not exists then
    -- A tombstone: a schedule older than this cancel that arrives later must still lose.
    redis.call('HSET', KEYS[1], 'booking_id', bid, 'state', 'cancelled', 'seq', 0, 'next', '',
      'next_at', '', 'updated_at', upd, 'created_at', now, 'changed_at', now,
      'reason', mode .. ' received before any schedule')
    tell(ctx, KEYS[6], KEYS[1], mode .. ' received before any schedule')
    event_note({verdict = 'applied', state = 'cancelled',
      detail = 'unknown booking; tombstone kept'})
    keep(true)
    return reply('applied', 'unknown booking; tombstone kept')
  end
  if upd ~= '' then redis.call('HSET', KEYS[1], 'updated_at', upd) end
  if state == 'scheduled' then
    drop_next()
    redis.call('HSET', KEYS[1], 'state', 'cancelled', 'next', '', 'next_at', '', 'changed_at', now,
      'reason', mode .. ' before the window started')
    tell(ctx, KEYS[6], KEYS[1], mode .. ' before the window started')
    event_note({verdict = 'applied', from = state, state = 'cancelled'})
    keep(true)
    return reply('applied', 'pending window dropped')
  elseif holding then
    drop_next()
    local id = set_next('stop', now)
    local ending = 'stop'
    if mode == 'cancel' then ending = 'cancel' end
    redis.call('HSET', KEYS[1], 'ending', ending, 'changed_at', now)
    event_note({verdict = 'applied', state = state, next = id, detail = 'release due now'})
    return reply('applied', 'release due now')
  elseif state == 'stopping' then
    if mode == 'cancel' then redis.call('HSET', KEYS[1], 'final', 'cancelled') end
    event_note({verdict = 'applied', state = state, detail = 'already stopping'})
    return reply('applied', 'already stopping')
  end
  event_note({verdict = 'ignored', state = state, detail = 'already ' .. state})
  return reply('ignored', 'already ' .. state)
end

-- schedule / start
local room = ARGV[5]
local start_due, stop_due = tonumber(ARGV[8]), tonumber(ARGV[9])
if mode == 'start' and holding then
  if upd ~= '' then redis.call('HSET', KEYS[1], 'updated_at', upd) end
  event_note({verdict = 'unchanged', state = state, detail = 'already holding the room'})
  return reply('unchanged', 'already holding the room')
end
if exists and b.room_id == room and b.start_at == ARGV[6] and b.end_at == ARGV[7]
    and b.params == ARGV[10] and b.start_due == ARGV[8] and b.stop_due == ARGV[9]
    and (state == 'scheduled' or (holding and (b.ending or '') == '')) then
  if upd ~= '' then redis.call('HSET', KEYS[1], 'updated_at', upd) end
  event_note({verdict = 'unchanged', state = state})
  return reply('unchanged', 'same window')
end

redis.call('HSET', KEYS[1], 'booking_id', bid, 'room_id', room, 'start_at', ARGV[6],
  'end_at', ARGV[7], 'start_due', ARGV[8], 'stop_due', ARGV[9], 'params', ARGV[10],
  'request', ARGV[11], 'changed_at', now, 'reason', '', 'code', '', 'message', '')
if not exists then redis.call('HSET', KEYS[1], 'created_at', now) end
if upd ~= '' then redis.call('HSET', KEYS[1], 'updated_at', upd) end
drop_next()

local detail
local id
if holding then
  if b.held_room == room and start_due <= now then
    id = set_next('stop', stop_due)
    redis.call('HSET', KEYS[1], 'ending', '')
    redis.call('ZADD', KEYS[5], stop_due, bid)
    detail = 'window changed while holding the room; stop moved'
  else
    -- Moved to the future or to another room: release now, start again at the new window.
    id = set_next('stop', now)
    redis.call('HSET', KEYS[1], 'ending', 'restart')
    detail = 'window moved while holding the room; release now, start again at the new window'
  end
else
  id = set_next('start', start_due)
  redis.call('HSET', KEYS[1], 'state', 'scheduled', 'ending', '', 'final', '', 'recorded', '',
    'rec_started_at', '', 'rec_stopped_at', '', 'tried', '')
  detail = 'start pending'
end
event_note({verdict = 'applied', from = state, state = redis.call('HGET', KEYS[1], 'state'),
      next = id, window = {tonumber(ARGV[6]), tonumber(ARGV[7])}, room_id = room,
      detail = detail})
keep(false)
return reply('applied', detail)
