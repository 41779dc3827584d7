-- Fixed window on Redis: the decision of src/algorithm/fixed_window.rs for one request of one
-- user key over all its rates (src/store/policy.rs), atomically. See README.md in this folder.
--
-- KEYS[i]  the state of rate i: "start count" (start of the live window, requests counted in it)
-- ARGV     mode ("decide" | "dry" | "peek"), now ("" = the server's TIME in microseconds), cost,
--          unit_per_ms, min_ttl_ms, then per rate: limit, window
-- Returns  {allowed (0/1), limit, remaining, reset_after, retry_after (-1 = never)}

local PER_RATE = 2

-- #include prelude.lua

-- Fixed window ------------------------------------------------------------------------------

-- The stored state, or nil when missing or not a state of this script.
local function load(key)
  local value = redis.call('GET', key)
  if not value then
    return nil
  end
  local start, count = string.match(value, '^(%d+) (%d+)$')
  if not start then
    return nil
  end
  return {start = tonumber(start), count = tonumber(count)}
end

-- One rate: its decision, and when admitted the state to store and when it expires.
local function judge(rate, state)
  local limit = param(rate, 1, 'limit')
  local window = param(rate, 2, 'window')
  within_range(rate, window)
  -- The window live at now (now - start saturating at 0, as in the core), else a fresh one.
  local start, count = now, 0
  if state and math.max(now - state.start, 0) < window then
    start, count = state.start, state.count
  end
  local function decision(allowed, counted, retry)
    local reset = 0
    if counted > 0 then
      reset = math.max(start + window - now, 0)
    end
    return {allowed, limit, math.max(limit - counted, 0), reset, retry}
  end
  if mode == 'peek' then
    local d = decision(1, count, 0)
    if count >= limit then
      d[1] = 0
    end
    return d
  end
  if cost > limit then
    return decision(0, count, NEVER)
  end
  if count + cost <= limit then
    count = count + cost
    return decision(1, count, 0), format(start) .. ' ' .. format(count), start + window
  end
  return decision(0, count, math.max(start + window - now, 0))
end

-- #include finish.lua
