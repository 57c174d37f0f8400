#!lua
-- Events refused at the door, kept aside (the list's oldest dropped beyond its bounds, counted).
-- KEYS: quarantine list, its bytes, stats. ARGV: most records kept, most bytes kept, then the records.
--#include append_bounded
local dropped = append_bounded(KEYS[1], KEYS[2], tonumber(ARGV[1]), tonumber(ARGV[2]), {unpack(ARGV, 3)})
redis.call('HINCRBY', KEYS[3], 'quarantined', #ARGV - 2)
if dropped > 0 then redis.call('HINCRBY', KEYS[3], 'quarantine_dropped', dropped) end
return dropped
