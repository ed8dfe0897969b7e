-- A processor with a syntax error on line 4.
local M = {}
function M.process(ctx, rec)
  local x = = 1
end
return M
