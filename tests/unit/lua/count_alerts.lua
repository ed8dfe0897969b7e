-- The documented example: count events per user, alert past a threshold.
local M = {}
local threshold = 100

function M.init(ctx)
  threshold = ctx.config.threshold or threshold
end

function M.process(ctx, rec)
  local n = ctx.state:incr(rec.value.user, 1)
  if n > threshold then
    ctx:emit("alerts", { user = rec.value.user, n = n }, rec.value.user)
  end
end

return M
