-- Uses the bundled window and dedup modules.
local window = require("window")
local dedup = require("dedup")
local M = {}

function M.process(ctx, rec)
  local v = rec.value
  if dedup.seen(ctx.state, v.id, 60000, rec.ts) then
    ctx:emit("dups", v.id)
    return
  end
  local s, closed = window.session(ctx.state, v.user, rec.ts, 1000)
  if closed then
    ctx:emit("sessions", { user = v.user, start = closed.start,
                           last = closed.last, count = closed.count })
  end
  ctx:emit("minute", window.tumbling(rec.ts, 60000))
end

return M
