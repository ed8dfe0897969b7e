-- Raises from a helper two calls deep: line 5 is where it fails.
local M = {}

local function inner(v)
  return v.missing.field
end

local function outer(v)
  return inner(v)
end

function M.process(ctx, rec)
  outer(rec.value)
end

return M
