-- Forgets to return its module table.
local M = {}
function M.process(ctx, rec) end
