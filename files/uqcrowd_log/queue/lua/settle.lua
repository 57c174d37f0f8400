#!lua flags=allow-oom
-- Settling entries Elasticsearch answered for: their refused events onto the dead-letter list (its
-- oldest dropped beyond its bounds, counted), then XACK + XDEL, their bytes and events off the
-- counters, in one step. Flagged allow-oom: it frees memory, so it must work when Redis is at its
-- maxmemory (a MULTI would be refused there). Returns how many records were dead-lettered.
-- KEYS: stats, stream, queued bytes, queued events, dead-letter list, its bytes.
-- ARGV: the consumer group, the list's most records and most bytes, number of records, events
-- indexed, events of withdrawn workers dropped, the records, then (id, bytes, events) per entry.
--#include append_bounded
local group = ARGV[1]
local records, indexed, withdrawn = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
if records > 0 then
  local dropped = append_bounded(KEYS[5], KEYS[6], tonumber(ARGV[2]), tonumber(ARGV[3]), {unpack(ARGV, 7, 6 + records)})
  redis.call('HINCRBY', KEYS[1], 'dead_lettered', records)
  if dropped > 0 then redis.call('HINCRBY', KEYS[1], 'dead_letter_dropped', dropped) end
end
local freed, events = 0, 0
for i = 7 + records, #ARGV, 3 do
  redis.call('XACK', KEYS[2], group, ARGV[i])
  if redis.call('XDEL', KEYS[2], ARGV[i]) == 1 then
    freed = freed + tonumber(ARGV[i + 1])
    events = events + tonumber(ARGV[i + 2])
  end
end
if redis.call('XLEN', KEYS[2]) == 0 then
  redis.call('SET', KEYS[3], 0)
  redis.call('SET', KEYS[4], 0)
else
  redis.call('DECRBY', KEYS[3], freed)
  redis.call('DECRBY', KEYS[4], events)
end
if indexed > 0 then redis.call('HINCRBY', KEYS[1], 'indexed', indexed) end
if withdrawn > 0 then redis.call('HINCRBY', KEYS[1], 'withdrawn', withdrawn) end
return records
