-- wrk script for bench/bench_serve.py: POST one image as multipart/form-data to /v1/predict,
-- count responses by status code per thread, optionally pace each connection (open-loop-ish
-- overload), and print one JSON line of results at the end.
--
-- Environment: PCBM_BENCH_BODY (a file holding the whole multipart body), PCBM_BENCH_BOUNDARY,
-- PCBM_BENCH_TOKEN, PCBM_BENCH_DELAY_MS (0: send the next request as soon as the answer arrives).

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

local f = assert(io.open(os.getenv("PCBM_BENCH_BODY"), "rb"))
local body = f:read("*a")
f:close()
local pause = tonumber(os.getenv("PCBM_BENCH_DELAY_MS") or "0")

wrk.method = "POST"
wrk.path = "/v1/predict"
wrk.body = body
wrk.headers["Content-Type"] = "multipart/form-data; boundary=" .. os.getenv("PCBM_BENCH_BOUNDARY")
wrk.headers["Authorization"] = "Bearer " .. os.getenv("PCBM_BENCH_TOKEN")

function init(args)
  codes = {}
end

function delay()
  return pause
end

function response(status, headers, body)
  codes[status] = (codes[status] or 0) + 1
end

function done(summary, latency, requests)
  local all = {}
  for _, t in ipairs(threads) do
    local c = t:get("codes")
    for k, v in pairs(c) do
      all[k] = (all[k] or 0) + v
    end
  end
  local parts = {}
  for k, v in pairs(all) do
    table.insert(parts, string.format('"%d": %d', k, v))
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "bytes": %d, "codes": {%s}, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_us": {"p50": %d, "p90": %d, "p95": %d, "p99": %d, "max": %d, "mean": %.1f}}\n',
    summary.requests, summary.duration, summary.bytes, table.concat(parts, ", "),
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(95), latency:percentile(99),
    latency.max, latency.mean))
end
