-- A CQRS projection: order events (created, paid, shipped, cancelled)
-- become an order-status view keyed by order id, and every status change
-- is emitted to "order-status" for downstream readers. Events that do not
-- fit the order's life cycle raise, so they land in the dead-letter topic
-- with the reason instead of corrupting the view.
--
--   kappactl proc create orders --file examples/lua/orders.lua \
--     --input order-events --output order-status
--   kappactl view get orders o-1001
local M = {}

-- Which status each event moves an order to, and from which statuses.
local transitions = {
  created   = { to = "created",   from = { [false] = true } },
  paid      = { to = "paid",      from = { created = true } },
  shipped   = { to = "shipped",   from = { paid = true } },
  cancelled = { to = "cancelled", from = { created = true, paid = true } },
}

function M.process(ctx, rec)
  local ev = rec.value
  local id, kind = ev.order, ev.type
  local t = transitions[kind]
  if type(id) ~= "string" or t == nil then
    error("not an order event: need order (string) and a type of created, paid, shipped, cancelled")
  end
  local order = ctx.state:get(id)
  local current = order and order.status or false
  if not t.from[current] then
    error(string.format("order %s: cannot go from %s to %s", id,
      tostring(current or "nothing"), t.to))
  end
  order = order or { id = id, items = ev.items, total = ev.total }
  order.status = t.to
  order.updated = rec.ts
  ctx.state:put(id, order)
  ctx.state:incr("count:" .. t.to, 1)
  if current then ctx.state:incr("count:" .. current, -1) end
  ctx:emit("order-status", { order = id, status = t.to, ts = rec.ts }, id)
end

return M
