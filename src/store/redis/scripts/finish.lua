-- The last part of every rate-limit script (see README.md), included where the script says
-- `-- #include finish.lua`, after its decide_rate.

-- Every rate decides, a request passes only if all admit, and only then is it consumed from
-- every rate (in mode 'decide'; 'dry' reports the same decision and writes nothing).

local reported, states, expiries = nil, {}, {}
for rate = 1, #KEYS do
  local d, state, expires_at = judge(rate, load(KEYS[rate]))
  states[rate], expiries[rate] = state, expires_at
  if reported then
    reported = most_restrictive(reported, d)
  else
    reported = d
  end
end
if mode == 'decide' and reported[1] == 1 then
  for rate = 1, #KEYS do
    store(KEYS[rate], states[rate], expiries[rate])
  end
end
return reply(reported)
