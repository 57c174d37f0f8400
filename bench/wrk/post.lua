-- wrk script: POST unique events (one per request, or BATCH per request) and count 2xx answers.
-- Environment: BATCH (events per request; 1 sends a bare object), PREFIX (session id prefix),
-- DELAY_MS (pause before each request, to hold a lower rate).
local batch = tonumber(os.getenv("BATCH") or "1")
local prefix = os.getenv("PREFIX") or "bench"
local delay_ms = tonumber(os.getenv("DELAY_MS") or "0")
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

function delay()
  return delay_ms
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
