-- The most frequent words, downstream of wordcount (the README's pipeline
-- example): reads wordcount's output ({word, count} records) and keeps in
-- its view, under "top", the word with the highest count so far, and under
-- "words:N" how many distinct words have reached count N.
--
--   kappactl proc create top --file examples/lua/top.lua --input word-counts
--   kappactl view get top top
local M = {}

function M.process(ctx, rec)
  local word, count = rec.value.word, rec.value.count
  if type(word) ~= "string" or type(count) ~= "number" then
    error("expected a {word, count} record from wordcount")
  end
  local best = ctx.state:get("top")
  if best == nil or count > best.count or
     (count == best.count and word < best.word) then
    ctx.state:put("top", { word = word, count = count })
  end
  ctx.state:incr("words:" .. count, 1)
end

return M
