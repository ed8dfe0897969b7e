-- Exercises every state method; emits what it read.
local M = {}
function M.process(ctx, rec)
  local s = ctx.state
  s:put("a:1", { x = 1 })
  s:put("a:2", kappa.array({ 1, 2 }))
  s:put("b:1", "other")
  s:put(7, true)                    -- number keys become strings
  local got = s:get("a:1")
  local missing = s:get("nope")
  local n = s:incr("counter", 5)
  n = s:incr("counter")             -- delta defaults to 1
  local scanned = s:scan("a:")
  local limited = s:scan("", 2)
  s:del("b:1")
  ctx:emit("out", {
    got = got, missing = missing == nil, n = n, seven = s:get("7"),
    scanned = scanned, limited = #limited, gone = s:get("b:1") == nil,
  })
  ctx:log("info", "state ops done")
  ctx:log("warn", "careful")
end
return M
