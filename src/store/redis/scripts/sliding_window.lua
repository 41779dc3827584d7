-- Sliding-window counter on Redis: the decision of src/algorithm/sliding_window.rs for one
-- request of one user key over all its rates (src/store/policy.rs), atomically. See README.md
-- in this folder.
--
-- KEYS[i]  the state of rate i: "start cur prev" (start of the current window, its count, the
--          previous window's count)
-- ARGV     mode ("decide" | "dry" | "peek"), now ("" = the server's TIME in microseconds), cost,
--          unit_per_ms, min_ttl_ms, then per rate: limit, window
-- Returns  {allowed (0/1), limit, remaining, reset_after, retry_after (-1 = never)}

local PER_RATE = 2

-- #include prelude.lua

-- Sliding-window counter ----------------------------------------------------------------------

-- floor(a * b / c) and the remainder, exactly, for integers a < 2^53, b <= 2^53 and
-- 1 <= c <= 2^52 whose quotient is below 2^53 (a * b itself may be far beyond 2^53).
local function muldiv(a, b, c)
  local product = a * b
  if product < MAX_EXACT then
    -- The product is exact: it is below 2^53 exactly when its rounding is.
    return divmod(product, c)
  end
  local b_quotient, b_rest = divmod(b, c)
  -- a * b = a * b_quotient * c + a * b_rest, and a * b_rest = q * c + r is computed by
  -- shift-and-add over the bits of a, keeping r < c (so 2 * r < 2^53).
  local q, r = 0, 0
  local bit = 1
  while bit * 2 <= a do
    bit = bit * 2
  end
  local rest = a
  while bit >= 1 do
    q, r = q * 2, r * 2
    if r >= c then
      q, r = q + 1, r - c
    end
    if rest >= bit then
      rest = rest - bit
      r = r + b_rest
      if r >= c then
        q, r = q + 1, r - c
      end
    end
    bit = bit / 2
  end
  return a * b_quotient + q, r
end

-- The stored state, or nil when missing or not a state of this script.
local function load(key)
  local value = redis.call('GET', key)
  if not value then
    return nil
  end
  local start, cur, prev = string.match(value, '^(%d+) (%d+) (%d+)$')
  if not start then
    return nil
  end
  return {start = tonumber(start), cur = tonumber(cur), prev = tonumber(prev)}
end

-- One rate: its decision, and when admitted the state to store and when it expires.
--
-- The core admits `cost` when prev * (W - e) + (cur + cost) * W <= limit * W, in u128. Here
-- prev * (W - e) = q * W + r (0 <= r < W) is computed exactly by muldiv, and every comparison
-- is made on q, r and the counts: X * W + r <= L * W for integers X, L exactly when
-- X + (1 if r > 0 else 0) <= L; and floor((L * W - X * W - r) / W) = L - X - (1 if r > 0).
local function judge(rate, state)
  local limit = param(rate, 1, 'limit')
  local window = param(rate, 2, 'window')
  within_range(rate, 2 * window)
  -- The view at now: the current window's start, its count and the previous window's count.
  local start, cur, prev = now, 0, 0
  if state then
    local elapsed = math.max(now - state.start, 0)
    if elapsed >= 2 * window or (elapsed >= window and state.cur == 0) then
      start, cur, prev = now, 0, 0
    elseif elapsed >= window then
      start, cur, prev = state.start + window, 0, state.cur
    else
      start, cur, prev = state.start, state.cur, state.prev
    end
  end
  local elapsed = math.max(now - start, 0)
  -- The previous window's weight, prev * (W - e) = q * W + r, e capped at W.
  local q, r = 0, 0
  if prev > 0 and elapsed < window then
    q, r = muldiv(prev, window - elapsed, window)
  end
  local carry = 0
  if r > 0 then
    carry = 1
  end
  local function decision(allowed, counted, retry)
    local reset_at = now
    if counted > 0 then
      reset_at = start + 2 * window
    elseif prev > 0 then
      reset_at = start + window
    end
    local left = limit - q - counted
    local remaining = 0
    if left > 0 then
      remaining = left - carry
    end
    return {allowed, limit, remaining, math.max(reset_at - now, 0), retry}
  end
  if mode == 'peek' then
    local d = decision(1, cur, 0)
    if d[3] == 0 then
      d[1] = 0
    end
    return d
  end
  if cost > limit then
    return decision(0, cur, NEVER)
  end
  if q + cur + cost + carry <= limit then
    cur = cur + cost
    local expires_at = start + window
    if cur > 0 then
      expires_at = start + 2 * window
    end
    return decision(1, cur, 0), format(start) .. ' ' .. format(cur) .. ' ' .. format(prev),
      expires_at
  end
  -- Denied with cost <= limit: the first elapsed time (from start) at which it fits.
  local admitted_at
  if cur + cost <= limit then
    -- The previous window's weight must fade: prev * (W - x) <= (limit - cur - cost) * W,
    -- prev > 0 here, and the quotient is below W.
    admitted_at = window - muldiv(limit - cur - cost, window, prev)
  else
    -- Only after this window rolls over, when cur is the weighted one:
    -- cur * (W - x) <= (limit - cost) * W; cur > limit - cost here, so the quotient is below W
    -- (the core's saturating subtraction never saturates).
    admitted_at = 2 * window - muldiv(limit - cost, window, cur)
  end
  return decision(0, cur, math.max(admitted_at - elapsed, 0))
end

-- #include finish.lua
