-- dedup.lua - drop repeated events by id, within a time-to-live measured
-- in event time.
--
-- The first sighting of an id is recorded in ctx.state (under
-- "dedup:" .. id unless another prefix is given), so deduplication
-- survives restarts and a replay drops exactly what the live run dropped.
-- No clock is read: "within ttl" compares event times.
--
--   local dedup = require("dedup")
--   if dedup.seen(ctx.state, rec.value.id, 3600 * 1000, rec.ts) then return end
local dedup = {}

local function dedup_key(id, prefix)
  if id == nil then error("dedup: id is nil", 3) end
  return (prefix or "dedup:") .. tostring(id)
end

-- Returns true when id was first seen less than ttl_ms (event time) from
-- ts, before or after (late events count too). Otherwise records ts as the
-- id's first sighting and returns false.
function dedup.seen(state, id, ttl_ms, ts, prefix)
  if type(ttl_ms) ~= "number" or ttl_ms <= 0 then
    error("dedup: ttl_ms must be a positive number", 2)
  end
  local k = dedup_key(id, prefix)
  local first = state:get(k)
  if first ~= nil and math.abs(ts - first) < ttl_ms then
    return true
  end
  state:put(k, ts)
  return false
end

-- Deletes up to limit (default 1000) recorded ids whose first sighting is
-- ttl_ms or more before ts. Call it now and then (say every 1000th offset)
-- to keep the view bounded. Returns how many were deleted.
function dedup.purge(state, ttl_ms, ts, limit, prefix)
  local p = prefix or "dedup:"
  local n = 0
  for _, kv in ipairs(state:scan(p, limit or 1000)) do
    if type(kv.value) == "number" and ts - kv.value >= ttl_ms then
      state:del(kv.key)
      n = n + 1
    end
  end
  return n
end

return dedup
