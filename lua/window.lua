-- window.lua - event-time windows for kappa processors.
--
-- Pure functions of event time (rec.ts, ms since the epoch) and of the
-- view: nothing here reads a clock, so a replay computes the same windows
-- and sessions as the live run did. Session state lives in ctx.state, so
-- it survives restarts and is rebuilt by replays.
--
--   local window = require("window")
--   local start = window.tumbling(rec.ts, 60000)          -- the minute
--   local s, closed = window.session(ctx.state, user, rec.ts, 30 * 60000)
local window = {}

local floor = math.floor

local function check_size(name, size)
  if type(size) ~= "number" or size <= 0 or size ~= floor(size) then
    error(name .. " must be a positive integer of milliseconds", 3)
  end
end

-- The start of the tumbling window of size_ms that holds ts: windows are
-- [k * size_ms, (k + 1) * size_ms), aligned to the epoch (negative ts too).
function window.tumbling(ts, size_ms)
  check_size("size_ms", size_ms)
  return ts - ts % size_ms
end

-- The starts of the hopping windows of size_ms, advancing by step_ms, that
-- hold ts, oldest first (size_ms a multiple of step_ms gives size/step).
function window.hopping(ts, size_ms, step_ms)
  check_size("size_ms", size_ms)
  check_size("step_ms", step_ms)
  local starts = {}
  local s = ts - ts % step_ms
  while s > ts - size_ms do
    table.insert(starts, 1, s)
    s = s - step_ms
  end
  return starts
end

local function session_key(key, prefix)
  return (prefix or "session:") .. tostring(key)
end

-- Sessionizes by event time. The session of key is a table
-- { start = ts, last = ts, count = n } kept in state under
-- prefix .. key (prefix defaults to "session:"). An event more than
-- gap_ms after the session's last event closes it and opens a new one.
-- Returns the current session (after this event) and the closed session
-- or nil. Events that arrive late (ts before last) join the open session
-- and may move its start back.
function window.session(state, key, ts, gap_ms, prefix)
  check_size("gap_ms", gap_ms)
  local k = session_key(key, prefix)
  local s = state:get(k)
  local closed = nil
  if s ~= nil and ts - s.last > gap_ms then
    closed, s = s, nil
  end
  if s == nil then
    s = { start = ts, last = ts, count = 1 }
  else
    if ts < s.start then s.start = ts end
    if ts > s.last then s.last = ts end
    s.count = s.count + 1
  end
  state:put(k, s)
  return s, closed
end

-- Ends key's session now (whatever the gap): deletes it from state and
-- returns it, or nil when there is none.
function window.session_close(state, key, prefix)
  local k = session_key(key, prefix)
  local s = state:get(k)
  if s ~= nil then state:del(k) end
  return s
end

return window
