-- Move a domain's "current model" pointer and record the change, in one atomic call.
--
-- KEYS[1]  current: a hash {version, previous, changed_at, reason}
-- KEYS[2]  history: a list of JSON change records, newest first
-- ARGV[1]  new version
-- ARGV[2]  expected current version ("*" = any, "" = none yet): compare-and-set guard
-- ARGV[3]  changed_at (UTC ISO-8601, from the caller so tests and replays are reproducible)
-- ARGV[4]  reason (free text)
-- ARGV[5]  history cap (entries kept)
-- Returns {1, previous} on success, {0, actual} when the guard fails (nothing written).
-- Complexity: O(1) plus the LTRIM of at most one surplus entry.
local actual = redis.call('HGET', KEYS[1], 'version') or ''
if ARGV[2] ~= '*' and ARGV[2] ~= actual then
  return {0, actual}
end
redis.call('HSET', KEYS[1], 'version', ARGV[1], 'previous', actual,
           'changed_at', ARGV[3], 'reason', ARGV[4])
local entry = cjson.encode({version = ARGV[1], previous = actual,
                            changed_at = ARGV[3], reason = ARGV[4]})
redis.call('LPUSH', KEYS[2], entry)
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[5]) - 1)
return {1, actual}
