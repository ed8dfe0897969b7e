-- Driven by kp_lua_run: keeps one value in a hundred past its record (and
-- its run), fails the records whose value says so, and draws a random
-- number per record (the same seed as a per-record call gets).
local M = {}
local kept = {}

function M.process(ctx, rec)
  local v = rec.value
  if v.fail then error("record " .. rec.offset .. " fails") end
  if rec.offset % 100 == 0 then kept[#kept + 1] = v end
  ctx.state:incr("n", 1)
  ctx.state:put("first", kept[1].user)
  ctx.state:put("last", kept[#kept].user)
  ctx.state:put("kept", #kept)
  if rec.offset == 0 then ctx.state:put("rand0", math.random(1000000)) end
end

return M
