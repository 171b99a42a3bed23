-- wrk script for scripts/bench.sh: prints one machine-readable summary line at the end.
--   wrk ... -s scripts/bench/stats.lua URL               plain run
--   wrk ... -s scripts/bench/stats.lua URL -- count      also count response statuses
-- Counting defines response(), which makes wrk hand every header and body to Lua and so
-- costs throughput: bench.sh uses it only in short extra runs that measure the 304 rate.
-- Request headers (If-None-Match) are given with wrk -H.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  n200, n304, nother = 0, 0, 0
  if args[1] == "count" then
    response = function(status, headers, body)
      if status == 200 then
        n200 = n200 + 1
      elseif status == 304 then
        n304 = n304 + 1
      else
        nother = nother + 1
      end
    end
  end
end

function done(summary, latency, requests)
  local c200, c304, cother = 0, 0, 0
  for _, t in ipairs(threads) do
    c200 = c200 + (t:get("n200") or 0)
    c304 = c304 + (t:get("n304") or 0)
    cother = cother + (t:get("nother") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    "WRKSTAT requests=%d duration_us=%d bytes=%d p50_us=%d p99_us=%d mean_us=%.1f " ..
    "err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d " ..
    "n200=%d n304=%d nother=%d\n",
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(99), latency.mean,
    e.connect, e.read, e.write, e.status, e.timeout,
    c200, c304, cother))
end
