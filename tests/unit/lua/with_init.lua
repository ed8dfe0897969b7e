-- init reads the config and logs; process uses what init stored.
local M = {}
local prefix, limit

function M.init(ctx)
  prefix = ctx.config.prefix
  limit = ctx.config.limits[2]
  ctx:log("info", "init with prefix " .. prefix)
end

function M.process(ctx, rec)
  ctx:emit("out", prefix .. ":" .. limit, rec.key)
end

return M
