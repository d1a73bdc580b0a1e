-- Raise the callback-silence warning once per episode: files keep going out without their
-- callback (found by poll or room look-up) and no callback came for the silence period.
--
-- KEYS[1]  silence (hash) last_callback_ms, quiet_since_ms (first file without a callback
--          since the last callback), quiet_files (how many since), warned_ms (episode raised)
-- ARGV[1]  now ms (the caller's injected clock)
-- ARGV[2]  silence ms (CALLBACK_SILENCE_S)
-- ARGV[3]  files without a callback an episode needs at least
--
-- Returns 1 when this call raised the warning (the caller logs it), else 0.

local now = now_ms(ARGV[1])
local s = redis.call('HMGET', KEYS[1], 'quiet_since_ms', 'quiet_files', 'warned_ms')
if s[3] or not s[1] then
  return 0
end
if tonumber(s[2] or '0') < tonumber(ARGV[3]) or now - tonumber(s[1]) < tonumber(ARGV[2]) then
  return 0
end
redis.call('HSET', KEYS[1], 'warned_ms', now)
return 1
