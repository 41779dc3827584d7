-- Token bucket, leaky bucket and GCRA on Redis (one algorithm in three vocabularies): the
-- decision of src/algorithm/bucket.rs for one request of one user key over all its rates
-- (src/store/policy.rs), atomically. See README.md in this folder.
--
-- KEYS[i]  the state of rate i: "tat" (the theoretical arrival time: when the bucket is full
--          again)
-- ARGV     mode ("decide" | "dry" | "peek"), now ("" = the server's TIME in microseconds), cost,
--          unit_per_ms, min_ttl_ms, then per rate: limit, interval (T = window / limit rounded
--          to the nearest unit), burst
-- Returns  {allowed (0/1), limit, remaining, reset_after, retry_after (-1 = never)}

local PER_RATE = 3

-- #include prelude.lua

-- Bucket (GCRA) -------------------------------------------------------------------------------

-- The stored state, or nil when missing or not a state of this script.
local function load(key)
  local value = redis.call('GET', key)
  if not value then
    return nil
  end
  local tat = string.match(value, '^(%d+)$')
  if not tat then
    return nil
  end
  return tonumber(tat)
end

-- One rate: its decision, and when admitted the state to store and when it expires.
local function judge(rate, stored_tat)
  local limit = param(rate, 1, 'limit')
  local interval = param(rate, 2, 'interval')
  local burst = param(rate, 3, 'burst')
  -- tolerance = burst * T: how far ahead of now the arrival time may run.
  local tolerance = burst * interval
  within_range(rate, 2 * tolerance)
  local tat = math.max(stored_tat or now, now)
  local function decision(allowed, at, retry)
    local backlog = math.max(at - now, 0)
    local remaining = divmod(math.max(tolerance - backlog, 0), interval)
    return {allowed, limit, remaining, backlog, retry}
  end
  if mode == 'peek' then
    local d = decision(1, tat, 0)
    if d[3] == 0 then
      d[1] = 0
    end
    return d
  end
  if cost > burst then
    return decision(0, tat, NEVER)
  end
  local next_tat = tat + cost * interval
  local limit_at = now + tolerance
  if next_tat <= limit_at then
    return decision(1, next_tat, 0), format(next_tat), next_tat
  end
  return decision(0, tat, next_tat - limit_at)
end

-- #include finish.lua
