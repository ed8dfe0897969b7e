-- init fails on line 5.
local M = {}

function M.init(ctx)
  error("refusing to start: " .. tostring(ctx.config.reason))
end

function M.process(ctx, rec) end

return M
