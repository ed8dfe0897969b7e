-- Misbehaves as rec.value.mode asks, to test limits and interrupts.
local M = {}
local hoard = {}

function M.process(ctx, rec)
  local mode = rec.value.mode
  if mode == "spin" then
    while true do end
  elseif mode == "alloc" then
    local t = {}
    while true do t[#t % 1000 + 1] = {} end
  elseif mode == "state" then
    while true do ctx.state:get("k") end
  elseif mode == "grow" then
    local t = {}
    while true do t[#t + 1] = ("x"):rep(100) end
  elseif mode == "hoard" then
    hoard[#hoard + 1] = ("y"):rep(1000) .. #hoard
  end
  if mode == "no" then ctx:emit("ok", rec.offset) end
end

return M
