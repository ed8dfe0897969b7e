-- Word count: counts every word of rec.value.text (or of rec.value when it
-- is a string) in the view, and emits each word's new count to the
-- processor's first output topic, keyed by the word.
--
--   kappactl proc create wordcount --file examples/lua/wordcount.lua \
--     --input lines --output word-counts
--   kappactl view get wordcount kappa
local M = {}

local out = "word-counts"

function M.init(ctx)
  out = ctx.config.output or out
end

function M.process(ctx, rec)
  local text = type(rec.value) == "table" and rec.value.text or rec.value
  if type(text) ~= "string" then
    error("record has no text: expected a string or {text = ...}")
  end
  for word in text:lower():gmatch("[%w']+") do
    local n = ctx.state:incr(word, 1)
    ctx:emit(out, { word = word, count = n }, word)
  end
end

return M
