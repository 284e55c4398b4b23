-- The fence of one Kafka partition's state, and guarded writes of its customers' keys.
--
-- A fence is a hash per (topic, partition): 'e' the owner's epoch (raised by every claim), 'g'
-- the consumer group generation of the last claim, 'o' the next offset to apply (the state
-- holds every record of the partition below it).
-- claim    KEYS[1] the fence; ARGV: 'claim', generation ('' for a tool outside the group).
--          Raises the epoch and records the generation; returns {epoch, next offset or false},
--          or {0, ...} when a newer generation claimed it already (the caller is a zombie).
-- write    KEYS[1..nf] fences, then state keys; ARGV: 'write', ttl s, nf, then per fence
--          (epoch, expected next offset ('' = none), new next offset), then per state key
--          (fence index, 1-based, or 0 for none; partition; epoch; guarded '1' | '0'; value).
--          A fence passes when its epoch is still the caller's and its next offset is the
--          expected one (or already the new one: the same write retried); otherwise it is
--          refused ('fenced': a newer owner claimed it; 'lost': Redis lost or rolled back the
--          state) and none of its keys is written. A guarded value starts with a guard header
--          (magic, partition, epoch; state/records.py) and does not replace a value that a
--          newer owner of the partition wrote (a Redis Cluster slot's keys are written without
--          their fence, which lives on another slot). Written keys get the TTL; passed fences
--          move to their new offsets last. Returns {fence index, reason, stored offset or ''}
--          per refused fence, flattened.
-- Window values are written as given: the window rule (which events, in what order) is
-- applied in the worker by state/window_table.py, and its reference is the pure function
-- state/window_rule.py:window_positions. tests/state/test_window_rule.py runs random event
-- streams through the table and this script and asserts the stored windows equal it.
local mode = ARGV[1]
if mode == 'claim' then
  local generation = tonumber(ARGV[2])
  if generation then
    local stored = tonumber(redis.call('HGET', KEYS[1], 'g') or '-1')
    if stored > generation then return {0, redis.call('HGET', KEYS[1], 'o')} end
    redis.call('HSET', KEYS[1], 'g', generation)
  end
  local epoch = redis.call('HINCRBY', KEYS[1], 'e', 1)
  return {epoch, redis.call('HGET', KEYS[1], 'o')}
end

local ttl, nf = tonumber(ARGV[2]), tonumber(ARGV[3])
local passed, refused = {}, {}
local at = 4
for i = 1, nf do
  local epoch, expected, new = tonumber(ARGV[at]), ARGV[at + 1], ARGV[at + 2]
  at = at + 3
  local fence = redis.call('HMGET', KEYS[i], 'e', 'o')
  local stored_epoch, stored = tonumber(fence[1]), fence[2]
  local reason = false
  if not stored_epoch or stored_epoch < epoch then
    reason = 'lost'  -- the fence itself is gone or older than our claim: Redis lost data
  elseif stored_epoch > epoch then
    reason = 'fenced'
  elseif stored ~= new and not (stored == expected or (stored == false and expected == '')) then
    reason = 'lost'
  end
  if reason then
    refused[#refused + 1] = i
    refused[#refused + 1] = reason
    refused[#refused + 1] = stored or ''
  else
    passed[i] = new
  end
end

for k = nf + 1, #KEYS do
  local index, p, epoch = tonumber(ARGV[at]), tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2])
  local guarded, value = ARGV[at + 3], ARGV[at + 4]
  at = at + 5
  if index == 0 or passed[index] then
    local write = true
    if guarded == '1' then
      local head = redis.call('GETRANGE', KEYS[k], 0, 11)
      if #head == 12 then
        local _, stored_p, stored_epoch = struct.unpack('<c4i4I4', head)
        if stored_p == p and stored_epoch > epoch then write = false end
      end
    end
    if write then redis.call('SET', KEYS[k], value, 'EX', ttl) end
  end
end
for i = 1, nf do
  if passed[i] then redis.call('HSET', KEYS[i], 'o', passed[i]) end
end
return refused
