-- Shared by every bench script. Prints wrk's summary as one JSON line that
-- bench/__main__.py reads (times in microseconds). A script that stops its threads
-- early (callback.lua) records t0/t1 per thread; the run's duration is then from the
-- first request sent to the last answer counted, not wrk's fixed -d.
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]]
local ts = ffi.new("bench_timespec")
function now_us()
  ffi.C.clock_gettime(1, ts)  -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000000 + math.floor(tonumber(ts.tv_nsec) / 1000)
end

bench_threads = {}
local next_tid = 0
function setup(thread)
  next_tid = next_tid + 1
  thread:set("tid", next_tid)
  table.insert(bench_threads, thread)
end

function done(summary, latency, requests)
  local duration, requests = summary.duration, summary.requests
  local t0, t1, counted
  for _, t in ipairs(bench_threads) do
    local a, b, n = t:get("t0"), t:get("t1"), t:get("counted")
    if a and b then
      if not t0 or a < t0 then t0 = a end
      if not t1 or b > t1 then t1 = b end
    end
    if n then counted = (counted or 0) + n end
  end
  if t0 and t1 and t1 > t0 then duration = t1 - t0 end
  if counted then requests = counted end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"wrk_requests":%d,"duration_us":%d,"wrk_duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f}}\n',
    requests, summary.requests, duration, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50.0), latency:percentile(90.0), latency:percentile(99.0),
    latency.max, latency.mean))
end
