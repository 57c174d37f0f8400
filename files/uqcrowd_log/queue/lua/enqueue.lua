#!lua
-- A request's events, appended as one stream entry, or refused when the queued documents and the side
-- lists together exceed the high-water mark. Returns the queued bytes after it, or -1 when refused.
-- KEYS: stream, queued bytes, queued events, stats, quarantine bytes, dead-letter bytes.
-- ARGV: the high-water mark in bytes, the entry's `lengths` and `events` fields, how many events.
-- The stream's own entries-added figure counts one accepted event per entry: the request's other
-- events are added to the "accepted" counter here.
local counted = redis.call('MGET', KEYS[2], KEYS[5], KEYS[6])
local used = tonumber(counted[1] or '0') + tonumber(counted[2] or '0') + tonumber(counted[3] or '0')
if used > tonumber(ARGV[1]) then return -1 end
redis.call('XADD', KEYS[1], '*', 'lengths', ARGV[2], 'events', ARGV[3])
local n = tonumber(ARGV[4])
redis.call('INCRBY', KEYS[3], n)
if n > 1 then redis.call('HINCRBY', KEYS[4], 'accepted', n - 1) end
return redis.call('INCRBY', KEYS[2], #ARGV[3])
