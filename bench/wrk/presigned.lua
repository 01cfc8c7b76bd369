-- wrk script for `switchyard-bench run --load-generator wrk`: a second load generator,
-- independent of our own, over events signed before the run (wrk cannot compute an
-- HMAC). The argument after `--` is a path prefix: thread N (from 1) reads the events
-- of `PREFIX.N` (one per line: the Stripe-Signature value, a tab, the body) and sends
-- each once, in order: no event is sent twice. A thread that runs out sends an unsigned
-- request, which the server refuses (a non-2xx the report shows).
--
-- At the end one line is printed: `WRK {json}` with the counts and latency percentiles.

local threads = {}
local next_id = 1

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  events = {}
  exhausted = 0
  for line in io.lines(args[1] .. "." .. id) do
    local tab = line:find("\t", 1, true)
    events[#events + 1] = { line:sub(1, tab - 1), line:sub(tab + 1) }
  end
  position = 1
end

function request()
  local event = events[position]
  if event == nil then
    exhausted = exhausted + 1
    return wrk.format("POST", nil, { ["Content-Type"] = "application/json" }, "{}")
  end
  position = position + 1
  return wrk.format("POST", nil, {
    ["Content-Type"] = "application/json",
    ["Stripe-Signature"] = event[1],
  }, event[2])
end

function done(summary, latency, requests)
  local unsigned = 0
  for _, thread in ipairs(threads) do
    unsigned = unsigned + (thread:get("exhausted") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'WRK {"requests":%d,"duration_us":%d,"non_2xx":%d,"errors":%d,"unsigned":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    unsigned, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max))
end
