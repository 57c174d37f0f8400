-- A side list (quarantine, dead letters) and the counter of its bytes: records appended, then the
-- oldest dropped while the list holds more records or bytes than its bounds. Returns how many were
-- dropped. Included by the scripts that append to a side list.
local function append_bounded(list, bytes_key, max_records, max_bytes, records)
  local added = 0
  for _, record in ipairs(records) do
    redis.call('RPUSH', list, record)
    added = added + #record
  end
  local bytes = tonumber(redis.call('INCRBY', bytes_key, added))
  local length = redis.call('LLEN', list)
  local dropped = 0
  while length > 0 and (length > max_records or bytes > max_bytes) do
    bytes = bytes - #redis.call('LPOP', list)
    length, dropped = length - 1, dropped + 1
  end
  if length == 0 or bytes < 0 then bytes = 0 end  -- a list written before its bytes were counted
  redis.call('SET', bytes_key, bytes)
  return dropped
end
