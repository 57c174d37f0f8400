#!lua
-- A request's events, appended as one stream entry; refused when one of its workers is in the
-- withdrawn-workers register (checked here, in the same step as the append: the backends ask Redis
-- once a request), or when the queued documents and the side lists together exceed the high-water mark.
-- Returns the queued bytes after it, -1 when over the mark, -2 when a worker withdrew (nothing appended).
-- KEYS: stream, queued bytes, queued events, stats, quarantine bytes, dead-letter bytes, withdrawn workers.
-- ARGV: the high-water mark in bytes, the entry's `lengths` and `events` fields, how many events, then
-- the request's worker ids (none: no check).
-- The stream's own entries-added figure counts one accepted event per entry: the request's other
-- events are added to the "accepted" counter here.
for i = 5, #ARGV do
  if redis.call('SISMEMBER', KEYS[7], ARGV[i]) == 1 then return -2 end
end
local counted = redis.call('MGET', KEYS[2], KEYS[5], KEYS[6])
local used = tonumber(counted[1] or '0') + tonumber(counted[2] or '0') + tonumber(counted[3] or '0')
if used > tonumber(ARGV[1]) then return -1 end
redis.call('XADD', KEYS[1], '*', 'lengths', ARGV[2], 'events', ARGV[3])
local n = tonumber(ARGV[4])
redis.call('INCRBY', KEYS[3], n)
if n > 1 then redis.call('HINCRBY', KEYS[4], 'accepted', n - 1) end
return redis.call('INCRBY', KEYS[2], #ARGV[3])
