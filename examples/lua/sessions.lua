-- Sessionization of click events by user, by event time: a session ends
-- when a user is idle for more than gap_ms (config, default 30 minutes) of
-- event time. Each closed session is emitted to "sessions" keyed by user;
-- the view holds every user's open session and per-user totals.
--
--   kappactl proc create sessions --file examples/lua/sessions.lua \
--     --input clicks --output sessions --config '{"gap_ms":600000}'
--   kappactl view get sessions totals:ada
local window = require("window")

local M = {}
local gap_ms = 30 * 60 * 1000

function M.init(ctx)
  gap_ms = ctx.config.gap_ms or gap_ms
end

function M.process(ctx, rec)
  local user = rec.value.user
  if type(user) ~= "string" then
    error("click without a user")
  end
  local open, closed = window.session(ctx.state, user, rec.ts, gap_ms)
  if closed then
    ctx:emit("sessions", {
      user = user,
      start = closed.start,
      ["end"] = closed.last,
      clicks = closed.count,
    }, user)
    ctx.state:incr("totals:" .. user, 1)
  end
  ctx.state:put("last_page:" .. user, rec.value.page)
end

return M
