#!lua flags=allow-oom
-- A counter: allowed at maxmemory (a field that exists grows nothing), so the 503s of a full Redis are
-- counted too. KEYS: stats. ARGV: the counter, the amount.
return redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2])
