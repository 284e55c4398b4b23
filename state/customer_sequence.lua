-- Append one encoded event to a customer's window, or read the window, atomically.
--
-- KEYS[1]  hash of one customer and domain. The window is kept as four packed fields, oldest
--          event first, ordered by (event time, event id bytes):
--            'ids' event ids, each followed by NUL      'ts' event times, float64 LE (ms)
--            'ks'  kinds, each followed by NUL          'vs' event vectors, concatenated
--          and beside it 'p' profile vector, 'pt' its time, 'pid' its event id, 'x' exposure,
--          'o:<topic>:<partition>' the last applied offset of that partition.
-- ARGV     mode ('append' | 'read'), event id, event time ms, kind, vector bytes,
--          is_profile ('1' | '0'), offset field ('' = no guard), offset, window W, ttl s,
--          exposure ('' = none; profiles only).
--          Mode 'batch' appends many events in one call: KEYS[1..n] and, after the mode, 10
--          arguments per key in the order above (event id ... exposure), applied in order.
-- Returns  {status, ids, ts, vs, ks, profile or nil, exposure or nil} after the call; in batch
--          mode one such reply per key, in order.
--          status: 1 applied, 0 duplicate event id, -1 offset already applied (redelivery),
--          2 older than every event of a full window (no change), 3 read.
-- Cost     O(W) bytes copied, a handful of redis.call per append; packed fields keep the
--          per-element Lua work (the expensive part in Redis) off the common path.
-- Byte index just after the k-th NUL-terminated record of s (0 for k = 0).
local function after(s, k)
  local pos = 0
  for _ = 1, k do pos = string.find(s, '\0', pos + 1, true) end
  return pos
end

-- The i-th (1-based) NUL-terminated record of s.
local function record(s, i)
  local start = after(s, i - 1)
  return string.sub(s, start + 1, string.find(s, '\0', start + 1, true) - 1)
end

-- One append (or read) on one key; a = the 10 per-event arguments (see ARGV above).
local function apply(key, mode, a)
  local f = redis.call('HMGET', key, 'ids', 'ts', 'vs', 'ks', 'p', 'x')
  local ids, ts, vs, ks = f[1] or '', f[2] or '', f[3] or '', f[4] or ''
  local status = 3

  if mode == 'append' then
    local event_id, t, kind, vec = a[1], tonumber(a[2]), a[3], a[4]
    local is_profile = a[5] == '1'
    local ofield, offset = a[6], tonumber(a[7])
    local window, ttl = tonumber(a[8]), tonumber(a[9])
    status = 1
    if ofield ~= '' then
      local last = redis.call('HGET', key, ofield)
      if last and tonumber(last) >= offset then status = -1 end
    end
    if status == 1 and is_profile then
      local meta = redis.call('HMGET', key, 'pid', 'pt')
      if meta[1] == event_id then
        status = 0
      elseif (not meta[2]) or tonumber(meta[2]) <= t then
        redis.call('HSET', key, 'p', vec, 'pt', t, 'pid', event_id)
        f[5] = vec
        if a[10] ~= '' then
          redis.call('HSET', key, 'x', a[10])
          f[6] = a[10]
        else
          redis.call('HDEL', key, 'x')
          f[6] = false
        end
      end
    elseif status == 1 then
      if string.find('\0' .. ids, '\0' .. event_id .. '\0', 1, true) then
        status = 0
      else
        local n = #ts / 8
        -- Insertion index k: events arrive mostly in order, so scan back from the newest.
        local k = n
        while k > 0 do
          local tk = struct.unpack('<d', ts, 8 * (k - 1) + 1)
          if tk < t or (tk == t and record(ids, k) < event_id) then break end
          k = k - 1
        end
        local drop = math.max(n + 1 - window, 0)
        if k < drop then
          status = 2
        else
          local d = #vec
          local ia, ka = after(ids, k), after(ks, k)
          ids = string.sub(ids, 1, ia) .. event_id .. '\0' .. string.sub(ids, ia + 1)
          ks = string.sub(ks, 1, ka) .. kind .. '\0' .. string.sub(ks, ka + 1)
          ts = string.sub(ts, 1, 8 * k) .. struct.pack('<d', t) .. string.sub(ts, 8 * k + 1)
          vs = string.sub(vs, 1, d * k) .. vec .. string.sub(vs, d * k + 1)
          if drop > 0 then
            ids = string.sub(ids, after(ids, drop) + 1)
            ks = string.sub(ks, after(ks, drop) + 1)
            ts = string.sub(ts, 8 * drop + 1)
            vs = string.sub(vs, d * drop + 1)
          end
          redis.call('HSET', key, 'ids', ids, 'ts', ts, 'vs', vs, 'ks', ks)
        end
      end
    end
    if status ~= -1 and ofield ~= '' then redis.call('HSET', key, ofield, offset) end
    redis.call('EXPIRE', key, ttl)
  end

  return {status, ids, ts, vs, ks, f[5], f[6]}
end

local mode = ARGV[1]
if mode ~= 'batch' then
  return apply(KEYS[1], mode, {unpack(ARGV, 2)})
end
local replies = {}
for i = 1, #KEYS do
  local base = 1 + 10 * (i - 1)
  replies[i] = apply(KEYS[i], 'append', {unpack(ARGV, base + 1, base + 10)})
end
return replies
