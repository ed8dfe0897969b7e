-- Emits every field of the record back, as the adapter built it.
local M = {}
function M.process(ctx, rec)
  ctx:emit("echo", {
    topic = rec.topic, partition = rec.partition, offset = rec.offset,
    ts = rec.ts, key = rec.key or "<nil>", value = rec.value,
    name = ctx.name,
  })
end
return M
