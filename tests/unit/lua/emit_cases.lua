-- The cases of test_lua_emit.c: every value the prelude's emit packs
-- itself must give kp_luamp_encode's bytes (enc); the others must reach
-- the C binding (the fallback), as must an emit the host refuses.
local emit, ctx, entry, enc, heard, refuse, cstr, interrupt = ...
local char, rep, format = string.char, string.rep, string.format

local function hex(s)
  return (s:gsub('.', function(c) return format('%02x', c:byte()) end))
end

local seed = 12345
local function rnd(n)
  seed = (seed * 1103515245 + 12345) % 2147483648
  return seed % n + 1
end

local checked = 0
-- Emits v (key k) and checks the bytes, the key and which path took it.
local function check(v, k, fallback, what)
  local _, _, _, calls0, fb0 = heard()
  emit(ctx, 'out', v, k)
  local got, key, topic, calls, fb = heard()
  local want = assert(enc(v))
  if got ~= want then
    error(what .. ': got ' .. hex(got) .. ', want ' .. hex(want), 2)
  end
  if topic ~= 'out' then error(what .. ': topic ' .. topic, 2) end
  local wkey = false
  if k ~= nil then wkey = cstr(k) end
  if key ~= wkey then error(what .. ': key ' .. tostring(key), 2) end
  if fallback and (fb ~= fb0 + 1 or calls ~= calls0) then
    error(what .. ': did not fall back', 2)
  elseif not fallback and (fb ~= fb0 or calls ~= calls0 + 1) then
    error(what .. ': fell back', 2)
  end
  checked = checked + 1
end

-- Numbers: both sides of every form's boundary, and floats.
local zero = 0
local negz, nan = -zero, zero / zero
assert(1 / negz == -math.huge)
local nums = { 0.5, -0.5, 1.5, -1.5, 1 / 3, 1e300, -1e-300, 5e-324,
  2^53 + 2, 2^63 - 1024, -2^63 - 2048, 2^63, 2^64, 1e20, -1e20,
  nan, math.huge, -math.huge, negz }
for _, b in ipairs({ 0, 31, 32, 127, 128, 255, 256, 65535, 65536,
    2^31 - 1, 2^31, 2^32 - 1, 2^32, 2^53, 2^62, -1, -31, -32, -33, -127,
    -128, -129, -32767, -32768, -32769, -2^31 + 1, -2^31, -2^31 - 1,
    -2^53, -2^62, -2^63 }) do
  nums[#nums + 1] = b - 1 nums[#nums + 1] = b nums[#nums + 1] = b + 1
end

-- Strings: every header's bounds, with zeros and bytes >= 0x80.
local bytes = {}
for i = 1, 256 do bytes[i] = char((i * 37) % 256) end
local chunk = table.concat(bytes)
local strs = {}
for _, n in ipairs({ 0, 1, 31, 32, 33, 255, 256, 65535, 65536, 70000 }) do
  strs[#strs + 1] = rep(chunk, math.ceil(n / 256) + 1):sub(1, n)
end

local keys = { '', 'a', 'ab', 'a\0', 'a\0b', 'a\0a', 'b', 'ba', 'A', 'Z',
  'aa', '\128', '\255', '\255\0', '\127', 'user', 'n', 'count',
  rep('k', 40), 'with space', '\195\169', 'a\128', 'a\127' }
for i = 1, 20 do keys[#keys + 1] = 'k' .. i end

local scalars = { true, false, 'x', '', 'u1', strs[3], strs[6] }
for _, v in ipairs(nums) do scalars[#scalars + 1] = v end

for _, v in ipairs(nums) do check(v, nil, false, 'number ' .. tostring(v)) end
for _, s in ipairs(strs) do check(s, 'k', false, 'string of ' .. #s) end
check(true, nil, false, 'true')
check(false, 'f', false, 'false')
for _, k in ipairs({ '', 'k', 'k\0x', 12, 1.5, negz, 2^53, 1e100, -7 }) do
  check(1, k, false, 'key ' .. tostring(k))
end

-- Flat tables of 0 to 20 (and up to 32) string keys, in random orders.
local function flat(n, big)
  local t, used, m = {}, {}, 0
  while m < n do
    local k = keys[rnd(#keys)]
    if not used[k] then
      used[k] = true m = m + 1
      if big and rnd(4) == 1 then t[k] = strs[rnd(#strs)]
      else t[k] = scalars[rnd(#scalars)] end
    end
  end
  return t
end
for n = 0, 20 do
  for trial = 1, 60 do
    check(flat(n, trial % 10 == 0), nil, false, n .. ' keys')
  end
end
for _, n in ipairs({ 31, 32 }) do check(flat(n), 'k', false, n .. ' keys') end

-- Everything else goes to the C binding, which gives the same bytes.
local function setmt(t) return setmetatable(t, {}) end
local others = { { 1, 2 }, { a = {} }, { [1] = 'x', a = 1 },
  { [true] = 1 }, { [1.5] = 'x' }, kappa.map({ a = 1 }), kappa.array({ 1 }),
  kappa.array(), kappa.map(), { a = kappa.null }, kappa.null, setmt({ a = 1 }),
  flat(33) }
for i, v in ipairs(others) do check(v, nil, true, 'other ' .. i) end
check(nil, 'k', true, 'nil')
local _, _, _, _, fb0 = heard()
entry('in', 0, 0, 0, nil, '\129\161a\001', true)
local got, _, topic, _, fb = heard()
assert(got == '\129\161a\001' and topic == 'lazy' and fb == fb0 + 1,
  'a lazy value goes to the C binding')

-- Arguments the binding refuses raise its own errors.
local function expect_fallback(what, ...)
  local _, _, _, calls0, fb0 = heard()
  local ok, err = pcall(emit, ...)
  local _, _, _, calls, fb = heard()
  assert(fb == fb0 + 1 and calls == calls0, what .. ': did not fall back')
  return ok, err
end
local ok, err = expect_fallback('function', ctx, 'out', function() end)
assert(not ok and err:find('cannot encode a function value'), err)
ok, err = expect_fallback('table key', ctx, 'out', 1, {})
assert(not ok and err:find('bad key'), err)
ok = expect_fallback('number topic', ctx, 5, 1)
assert(ok and select(3, heard()) == '5')

-- A refused or interrupted emit is retried by the binding, once.
refuse(-10005)
local _, _, _, calls0, fb1 = heard()
emit(ctx, 'out', { a = 1 }, 'k')
local _, _, _, calls, fb2 = heard()
assert(calls == calls0 + 1 and fb2 == fb1 + 1, 'refused: retried once')
refuse(0)
interrupt(true)
ok = pcall(emit, ctx, 'out', 7)
interrupt(false)
local _, _, _, calls2, fb3 = heard()
assert(ok and calls2 == calls and fb3 == fb2 + 1, 'interrupted: binding')
check({ a = 1 }, 'k', false, 'after the retries')
assert(checked > 1000)
