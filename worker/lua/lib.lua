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
