-- Emits values that cannot be encoded.
local M = {}
function M.process(ctx, rec)
  if rec.value == 1 then
    ctx:emit("out", { f = function() end })
  elseif rec.value == 2 then
    local t = {} t.t = t
    ctx:emit("out", t)
  else
    ctx.state:incr("k", 1.5)
  end
end
return M
