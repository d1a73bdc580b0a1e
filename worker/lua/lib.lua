-- lib.lua: helpers shared by every Lua script of the product. The one loader (worker/redis.py)
-- prepends this file to each script, so a helper is written once. Helpers take every key they
-- touch as an argument: scripts pass on keys from their KEYS, never build key names.

-- HGETALL as a Lua table (field -> value).
local function hgetall(key)
  local flat = redis.call('HGETALL', key)
  local t = {}
  for i = 1, #flat, 2 do t[flat[i]] = flat[i + 1] end
  return t
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
