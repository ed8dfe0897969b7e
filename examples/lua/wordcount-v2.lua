-- Word count, version 2 (the README's reload and replay example): as
-- wordcount.lua, but without the commonest English words ("the", "a",
-- "of", ...), which say nothing about a text. Hot-reloaded, it counts the
-- records to come this way; replayed (proc replay --file), it rebuilds the
-- whole view from history this way, beside the live version.
local M = {}

local out = "word-counts"
local stop = {}
for w in ("a an and are as at be by for from in is it of on or that the " ..
          "this to was with"):gmatch("%S+") do
  stop[w] = true
end

function M.init(ctx)
  out = ctx.config.output or out
end

function M.process(ctx, rec)
  local text = type(rec.value) == "table" and rec.value.text or rec.value
  if type(text) ~= "string" then
    error("record has no text: expected a string or {text = ...}")
  end
  for word in text:lower():gmatch("[%w']+") do
    if not stop[word] then
      local n = ctx.state:incr(word, 1)
      ctx:emit(out, { word = word, count = n }, word)
    end
  end
end

return M
