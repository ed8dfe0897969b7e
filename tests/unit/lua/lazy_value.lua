-- rec.value of a small map is a lazy proxy: it must behave as the decoded
-- map (fields, nested values, pairs, metatable, keeping it, changing it).
local M = {}
local kept

function M.process(ctx, rec)
  local v = rec.value
  if kept == nil then kept = v end
  ctx.state:put("user", v.user)
  ctx.state:put("n", v.n)
  ctx.state:put("missing", v.missing == nil and v[1] == nil)
  ctx.state:put("nested", v.sub)
  ctx.state:put("null", v.z == kappa.null)
  ctx.state:put("mt", getmetatable(v) == getmetatable(kappa.map()))
  ctx.state:put("kept", kept.user)
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys)
  ctx.state:put("keys", table.concat(keys, ","))
  ctx.state:incr("count", 1)
  ctx.state:put("got", ctx.state:get("count"))
  local w = rec.value
  w.extra = 1
  w.n = nil
  if rec.offset == 0 then ctx:emit("out", w) end
end

return M
