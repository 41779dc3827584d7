-- The first part of every rate-limit script (see README.md): arguments, time, exact
-- arithmetic, storage with a TTL. Each algorithm's script includes it where it says
-- `-- #include prelude.lua`, after defining PER_RATE.

-- Doubles hold every integer up to 2^53: every time and sum below is kept within it.
local MAX_EXACT = 9007199254740992
local NEVER = math.huge

local function fail(message)
  error({err = 'ERR rate limit script: ' .. message})
end

local function integer(index, name, least)
  local value = tonumber(ARGV[index])
  if value == nil or value ~= math.floor(value) or value < least or value == math.huge then
    fail(name .. ' must be an integer >= ' .. least .. ', got "' .. tostring(ARGV[index]) .. '"')
  end
  return value
end

-- 'decide' writes an admission; 'dry' makes the same decision and writes nothing; 'peek'
-- reports the standing (what a request of cost 0 would see).
local mode = ARGV[1]
if mode ~= 'decide' and mode ~= 'peek' and mode ~= 'dry' then
  fail('mode must be "decide" or "peek" or "dry", got "' .. tostring(mode) .. '"')
end
if #KEYS == 0 or #ARGV ~= 5 + PER_RATE * #KEYS then
  fail('expected one key per rate and 5 + ' .. PER_RATE .. ' arguments per rate, got '
    .. #KEYS .. ' keys and ' .. #ARGV .. ' arguments')
end
local now
if ARGV[2] == '' then
  -- Effects replication (the default since Redis 5) lets a script read TIME and then write.
  if redis.replicate_commands then
    redis.replicate_commands()
  end
  local time = redis.call('TIME')
  now = tonumber(time[1]) * 1000000 + tonumber(time[2])
else
  now = integer(2, 'now', 0)
end
local cost = integer(3, 'cost', 0)
local unit_per_ms = integer(4, 'unit_per_ms', 1)
local min_ttl_ms = integer(5, 'min_ttl_ms', 0)

local function param(rate, offset, name)
  return integer(5 + PER_RATE * (rate - 1) + offset, name .. ' of rate ' .. rate, 1)
end

local function within_range(rate, span)
  if span >= MAX_EXACT or now > MAX_EXACT - span then
    fail('now + ' .. span .. ' for rate ' .. rate .. ' exceeds 2^53, beyond exact arithmetic')
  end
end

-- x = q * d + r with 0 <= r < d, exactly (x < 2^53, d >= 1): fmod is exact, and so is the
-- division of the exact multiple x - r.
local function divmod(x, d)
  local r = math.fmod(x, d)
  return (x - r) / d, r
end

local function format(value)
  return string.format('%.0f', value)
end

-- Stores `value` until `expires_at` (in the caller's unit), when the state stops mattering;
-- a state that has already stopped mattering is removed instead.
local function store(key, value, expires_at)
  local left = expires_at - now
  if left <= 0 then
    redis.call('DEL', key)
    return
  end
  local ms, rest = divmod(left, unit_per_ms)
  if rest > 0 then
    ms = ms + 1
  end
  if ms < min_ttl_ms then
    ms = min_ttl_ms
  end
  redis.call('SET', key, value, 'PX', format(ms))
end

-- Of two decisions on the same request, the one to report (src/decision.rs): a denial over an
-- admission, the longer wait among denials, the fewer remaining among admissions (then the
-- longer reset); on a tie the first.
local function most_restrictive(a, b)
  if a[1] ~= b[1] then
    if a[1] == 0 then
      return a
    end
    return b
  end
  if a[1] == 0 then
    if b[5] > a[5] then
      return b
    end
    return a
  end
  if b[3] < a[3] or (b[3] == a[3] and b[4] > a[4]) then
    return b
  end
  return a
end

local function reply(d)
  local retry = d[5]
  if retry == NEVER then
    retry = -1
  end
  return {d[1], d[2], d[3], d[4], retry}
end
