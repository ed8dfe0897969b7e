-- Raises from a helper two calls deep: line 5 is where it fails.
local M = {}

local function inner(v)
  return v.missing.field
end

local function outer(v)
  local r = inner(v)
  return r
end

function M.process(ctx, rec)
  outer(rec.value)
end

return M
