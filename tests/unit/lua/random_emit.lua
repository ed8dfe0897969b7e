-- Emits math.random draws: the same record gives the same numbers.
local M = {}
function M.process(ctx, rec)
  ctx:emit("r", { math.random(), math.random(1000000) })
end
return M
