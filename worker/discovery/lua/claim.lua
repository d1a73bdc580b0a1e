-- Claim the one downstream message of a file: whoever creates the outbox record publishes.
--
-- KEYS[1]  outbox:<fid>     (hash) state, body, routing_key, source, claimed_ms[, sent_ms]
-- KEYS[2]  outbox:pending   (zset) fid -> when a sweep may publish it again (ms)
-- ARGV[1]  now ms (epoch; the caller's injected clock, the script never reads TIME)
-- ARGV[2]  fid
-- ARGV[3]  body (the JSON message)
-- ARGV[4]  routing key
-- ARGV[5]  source (callback | poll | room)
-- ARGV[6]  lease ms: how long the claimer has to publish before a sweep re-publishes
-- ARGV[7]  ttl s of the outbox record (the dedupe memory)
--
-- Returns {1, claimed_ms} when this caller claimed the file (it must publish, then mark it sent),
-- or {0, state} when the file was claimed before ("pending" or "sent"): publish nothing.

if redis.call('EXISTS', KEYS[1]) == 1 then
  return {0, redis.call('HGET', KEYS[1], 'state') or ''}
end
local now = now_ms(ARGV[1])
redis.call('HSET', KEYS[1],
  'state', 'pending', 'body', ARGV[3], 'routing_key', ARGV[4], 'source', ARGV[5],
  'claimed_ms', now)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[7]))
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[6]), ARGV[2])
return {1, now}
