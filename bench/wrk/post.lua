-- wrk script: POST unique events (one per request, or BATCH per request) and count 2xx answers.
-- Environment: BATCH (events per request; 1 sends a bare object), PREFIX (session id prefix),
-- INTERVAL_MS (each wrk thread starts a request every INTERVAL_MS on a fixed schedule, to hold a
-- given rate whatever the answers' latency; a request behind schedule goes at once; 0: no pause).
local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock, bench_timespec *now);
]]
local batch = tonumber(os.getenv("BATCH") or "1")
local prefix = os.getenv("PREFIX") or "bench"
local interval_ms = tonumber(os.getenv("INTERVAL_MS") or "0")
local clock = ffi.new("bench_timespec")
local next_at = nil -- this thread's next request slot, in ms of the monotonic clock
local threads = {}
-- Globals, not locals: done() reads them from each thread with thread:get().
counter = 0
id = 0
ok = 0
failed = 0

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

local function event(n)
  return string.format(
    '{"log_type":"mouse_event","sequence_number":%d,"browser_time":"2026-11-28T00:00:00.000Z",' ..
    '"session_id":"%s-%d","worker_id":"W1","hit_id":"H1","assignment_id":"A1","exp_id":"bench",' ..
    '"content":{"mouse_event":"click","details":{"event_x":100,"event_y":400,"tag":"button","id":"answer"}}}',
    n, prefix, id)
end

function request()
  local parts = {}
  for i = 1, batch do
    counter = counter + 1
    parts[i] = event(counter)
  end
  local body = batch == 1 and parts[1] or ("[" .. table.concat(parts, ",") .. "]")
  return wrk.format("POST", "/logger/insert", {["Content-Type"] = "text/plain"}, body)
end

local function now_ms()
  ffi.C.clock_gettime(1, clock) -- CLOCK_MONOTONIC
  return tonumber(clock.tv_sec) * 1000 + tonumber(clock.tv_nsec) / 1e6
end

function delay()
  if interval_ms <= 0 then return 0 end
  local now = now_ms()
  next_at = next_at and next_at + interval_ms or now
  return math.max(0, next_at - now)
end

function response(status, headers, body)
  if status >= 200 and status < 300 then ok = ok + 1 else failed = failed + 1 end
end

function done(summary, latency, requests)
  local total_ok, total_failed = 0, 0
  for _, thread in ipairs(threads) do
    total_ok = total_ok + thread:get("ok")
    total_failed = total_failed + thread:get("failed")
  end
  io.write(string.format('BENCH {"ok": %d, "non_2xx": %d, "errors": %d, "p50_ms": %.3f, "p99_ms": %.3f, ' ..
    '"requests": %d, "seconds": %.3f}\n',
    total_ok, total_failed, summary.errors.connect + summary.errors.read + summary.errors.write +
    summary.errors.timeout, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.requests, summary.duration / 1e6))
end
