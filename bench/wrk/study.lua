-- wrk script: a study's workers, one connection each (wrk -c W), each its own client address through a
-- trusted front proxy's X-Forwarded-For, each a session of the tracker's shape: Start Session, then a
-- request after gaps drawn from an exponential law (mean MEAN_GAP_MS) of EVENTS_MIN to EVENTS_MAX
-- events of the tracker's sizes (clicks, scrolls, focus changes, typing bursts), End Session after
-- SESSION_REQUESTS requests, then a new session. Counts the events the server accepted (its answer's
-- "accepted", or one per 2xx for the original design's backends, which answer "True"), and every answer
-- by its status.
-- Gaps are cut at MAX_GAP_MS, under HAProxy's keep-alive and request timeouts: a browser whose worker
-- pauses longer opens a new connection with its next request, which wrk cannot do (it counts the idle
-- close as a socket error, and its new connection waits a whole gap before sending, which HAProxy's
-- timeout http-request answers with a 408). With a mean of 2 s and a cut at 9 s, 1.1 % of gaps are cut.
-- Environment: PREFIX, WORKERS (= the connections), THREADS (wrk -t), MEAN_GAP_MS, MAX_GAP_MS, EVENTS_MIN,
-- EVENTS_MAX, SESSION_REQUESTS.
local prefix = os.getenv("PREFIX") or "study"
local workers = tonumber(os.getenv("WORKERS") or "100")
local thread_count = tonumber(os.getenv("THREADS") or "2")   -- wrk -t: each thread plays its share of the workers
local mean_gap_ms = tonumber(os.getenv("MEAN_GAP_MS") or "2000")
local max_gap_ms = tonumber(os.getenv("MAX_GAP_MS") or "9000")
local events_min = tonumber(os.getenv("EVENTS_MIN") or "1")
local events_max = tonumber(os.getenv("EVENTS_MAX") or "20")
local session_requests = tonumber(os.getenv("SESSION_REQUESTS") or "60")
local threads = {}
-- Globals, not locals: done() reads them from each thread with thread:get().
id = 0
ok = 0
failed = 0
events = 0
statuses = {}   -- status code (as text) -> answers
local slots = {}   -- this thread's workers: {address, session, sequence, requests}
local turn = 0

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(1000 + id)
  local mine = math.floor(workers / thread_count + 0.5)
  for i = 1, math.max(1, mine) do
    local n = id * 100000 + i
    slots[i] = {address = string.format("10.%d.%d.%d", math.floor(n / 65536) % 256, math.floor(n / 256) % 256, n % 256),
                worker = string.format("W%d-%d", id, i), session = 0, sequence = 0, requests = 0}
  end
end

local typing_edits = string.rep('[120,"insertText","a"],', 24) .. '[130,"insertText","b"]'
local kinds = {
  function() return "mouse_event", '"mouse_event":"click","details":{"tag":"button","id":"answer","name":"","class_name":"btn btn-primary","event_x":412,"event_y":688,"client_x":412,"client_y":311,"button":0}' end,
  function() return "browser_event", '"browser_event":"scroll","details":{"scroll_x":0,"scroll_y":1377}' end,
  function() return "html_event", '"html_event":"focus","details":{"tag":"textarea","id":"summary","name":"summary","class_name":"form-control"}' end,
  function() return "keyboard_event", '"keyboard_event":"typing","details":{"tag":"textarea","id":"summary","name":"summary","class_name":"form-control","started":"2026-12-06T10:00:00.000Z","edits":[' .. typing_edits .. '],"typed_chars":25,"deletions":0}' end,
}
local weights = {1, 1, 1, 1, 1, 2, 2, 3, 4, 4}   -- clicks half, scrolls, focus, typing bursts

local function event(slot, log_type, content)
  slot.sequence = slot.sequence + 1
  return string.format(
    '{"log_type":"%s","sequence_number":%d,"browser_time":"2026-12-06T10:00:00.000Z","session_id":"%s-%d-%s-%d",' ..
    '"worker_id":"%s","hit_id":"H1","assignment_id":"A-%s","exp_id":"study","content":{%s}}',
    log_type, slot.sequence - 1, prefix, id, slot.worker, slot.session, slot.worker, slot.worker, content)
end

function request()
  turn = turn % #slots + 1
  local slot = slots[turn]
  local parts = {}
  if slot.requests == 0 then
    slot.session, slot.sequence = slot.session + 1, 0
    parts[1] = event(slot, "message", '"message":"Start Session","details":{"url":"https://tasks.example/page?workerId=' .. slot.worker .. '","referrer":"","screen_width":1920,"screen_height":1080,"window_width":1280,"window_height":800}')
  end
  local ending = slot.requests + 1 >= session_requests
  local count = math.random(events_min, events_max) - #parts - (ending and 1 or 0)
  for _ = 1, count do
    local log_type, content = kinds[weights[math.random(#weights)]]()
    parts[#parts + 1] = event(slot, log_type, content)
  end
  slot.requests = slot.requests + 1
  if ending then   -- End Session, within the request's count (one event a request for the original design)
    parts[#parts + 1] = event(slot, "message", string.format('"message":"End Session","details":{"events":%d,"dropped":0}', slot.sequence + 1))
    slot.requests = 0
  end
  local body = #parts == 1 and parts[1] or ("[" .. table.concat(parts, ",") .. "]")
  return wrk.format("POST", "/logger/insert", {["Content-Type"] = "text/plain", ["X-Forwarded-For"] = slot.address}, body)
end

function delay()
  -- exponential gaps (a worker's requests are a Poisson stream), cut under HAProxy's idle timeouts
  return math.min(max_gap_ms, -mean_gap_ms * math.log(1 - math.random()))
end

function response(status, headers, body)
  local code = tostring(status)
  statuses[code] = (statuses[code] or 0) + 1
  if status >= 200 and status < 300 then
    ok = ok + 1
    local accepted = body and string.match(body, '"accepted":%s*(%d+)')
    events = events + (accepted and tonumber(accepted) or 1)
  else
    failed = failed + 1
  end
end

function done(summary, latency, requests)
  local total_ok, total_failed, total_events, by_status = 0, 0, 0, {}
  for _, thread in ipairs(threads) do
    total_ok = total_ok + thread:get("ok")
    total_failed = total_failed + thread:get("failed")
    total_events = total_events + thread:get("events")
    for code, count in pairs(thread:get("statuses")) do
      by_status[code] = (by_status[code] or 0) + count
    end
  end
  local codes = {}
  for code, count in pairs(by_status) do
    codes[#codes + 1] = string.format('"%s": %d', code, count)
  end
  table.sort(codes)
  local errors = summary.errors
  io.write(string.format('BENCH {"ok": %d, "non_2xx": %d, "events": %d, "errors": %d, "p50_ms": %.3f, "p99_ms": %.3f, ' ..
    '"requests": %d, "seconds": %.3f, "statuses": {%s}, "error_kinds": {"connect": %d, "read": %d, "write": %d, ' ..
    '"timeout": %d}}\n',
    total_ok, total_failed, total_events, errors.connect + errors.read + errors.write + errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.requests, summary.duration / 1e6,
    table.concat(codes, ", "), errors.connect, errors.read, errors.write, errors.timeout))
end
