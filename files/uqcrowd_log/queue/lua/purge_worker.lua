#!lua flags=allow-oom
-- A withdrawal: the records of one worker's events out of a side list, its bytes counted again. A
-- record's event (a dead letter's `document`, a quarantined `event`: records.py) is the worker's if
-- its worker_id is the worker's; a quarantined event that is not JSON is, if it holds the worker's id
-- anywhere (it may not be taken for another's). Returns how many records went.
-- KEYS: the list, its bytes. ARGV: the worker id.
local kept, removed, bytes = {}, 0, 0
for _, raw in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  local record = cjson.decode(raw)
  local text = record['document'] or record['event'] or ''
  local parsed, event = pcall(cjson.decode, text)
  local mine
  if parsed and type(event) == 'table' then
    mine = event['worker_id'] ~= nil and tostring(event['worker_id']) == ARGV[1]
  else
    mine = string.find(text, ARGV[1], 1, true) ~= nil
  end
  if mine then removed = removed + 1 else kept[#kept + 1] = raw; bytes = bytes + #raw end
end
if removed > 0 then
  redis.call('DEL', KEYS[1])
  for i = 1, #kept, 1000 do redis.call('RPUSH', KEYS[1], unpack(kept, i, math.min(i + 999, #kept))) end
  redis.call('SET', KEYS[2], bytes)
end
return removed
