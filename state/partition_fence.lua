-- The state of a Kafka partition's customers, written by the partition's owner, fenced.
--
-- KEYS[1]  (claim, and write with fences) the topic's fence hash: per partition p, 'p:e' the
--          owner's epoch (raised by every claim) and 'p:o' the next offset to apply (the state
--          holds every record of p below it). Other KEYS: customer state keys.
-- claim    ARGV: 'claim', p, consumer group generation ('' for a tool). Raises p's epoch and records the
--          generation; returns {epoch, next offset or false}, or {0, ...} when a newer
--          generation claimed p already (the caller is a zombie of an older one).
-- write    ARGV: 'write', ttl s, nf (fences in this call: 0 on a Redis Cluster slot's call),
--          then nf x (p, epoch, expected next offset ('' = none), new next offset), then per
--          state key (KEYS[2..] with fences, KEYS[1..] without): p, epoch, guarded ('1' | '0'),
--          value. A fence passes when the epoch is still the caller's and the next offset is the
--          expected one (or already the new one: the same write retried); otherwise p is refused
--          ('fenced': a newer owner claimed p; 'lost': Redis lost or rolled back p's state) and
--          none of its keys is written. A guarded value starts with a guard header (magic, p,
--          epoch; state/records.py): it does not replace a value that a newer owner of p wrote.
--          Every written key gets the TTL; passed fences move to their new offsets last.
-- Returns  (write) {p, reason, stored next offset or ''} per refused partition, flattened.
local mode = ARGV[1]
if mode == 'claim' then
  local p, generation = ARGV[2], tonumber(ARGV[3])
  if generation then  -- '' : a tool outside the consumer group (state rebuild)
    local stored = tonumber(redis.call('HGET', KEYS[1], p .. ':g') or '-1')
    if stored > generation then return {0, redis.call('HGET', KEYS[1], p .. ':o')} end
    redis.call('HSET', KEYS[1], p .. ':g', generation)
  end
  local epoch = redis.call('HINCRBY', KEYS[1], p .. ':e', 1)
  return {epoch, redis.call('HGET', KEYS[1], p .. ':o')}
end

local ttl, nf = tonumber(ARGV[2]), tonumber(ARGV[3])
local passed, refused, moves = {}, {}, {}
local at = 4
for _ = 1, nf do
  local p, epoch, expected, new = ARGV[at], tonumber(ARGV[at + 1]), ARGV[at + 2], ARGV[at + 3]
  at = at + 4
  local fence = redis.call('HMGET', KEYS[1], p .. ':e', p .. ':o')
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
    refused[#refused + 1] = p
    refused[#refused + 1] = reason
    refused[#refused + 1] = stored or ''
  else
    passed[p] = true
    moves[#moves + 1] = {p, new}
  end
end

local first = nf > 0 and 2 or 1
for i = first, #KEYS do
  local p, epoch, guarded, value = ARGV[at], tonumber(ARGV[at + 1]), ARGV[at + 2], ARGV[at + 3]
  at = at + 4
  if nf == 0 or passed[p] then
    local write = true
    if guarded == '1' then
      local head = redis.call('GETRANGE', KEYS[i], 0, 11)
      if #head == 12 then
        local _, stored_p, stored_epoch = struct.unpack('<c4i4I4', head)
        if stored_p == tonumber(p) and stored_epoch > epoch then write = false end
      end
    end
    if write then redis.call('SET', KEYS[i], value, 'EX', ttl) end
  end
end
for _, move in ipairs(moves) do
  redis.call('HSET', KEYS[1], move[1] .. ':o', move[2])
end
return refused
