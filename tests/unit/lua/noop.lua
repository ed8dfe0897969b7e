-- Returns normally without emitting or touching state.
local M = {}
function M.process(ctx, rec)
  local _ = rec.value
end
return M
