-- Append one encoded event to a customer's window, or read the window, atomically.
--
-- KEYS[1]  hash of one customer and domain. The window is kept as four packed fields, oldest
--          event first, ordered by (event time, event id bytes):
--            'ids' event ids, each followed by NUL      'ts' event times, float64 LE (ms)
--            'ks'  kinds, each followed by NUL          'vs' event vectors, concatenated
--            'hs'  8-byte content hashes (all zero: unknown, e.g. stored before hashes existed)
--          and beside it 'p' profile vector, 'pt' its time, 'pid' its event id, 'ph' its hash,
--          'x' exposure, 'o:<topic>:<partition>' the last applied offset of that partition.
-- ARGV     mode ('append' | 'read'), event id, event time ms, kind, vector bytes,
--          is_profile ('1' | '0'), offset field ('' = no guard), offset, window W, ttl s,
--          exposure ('' = none; profiles only), content hash (8 bytes, '' = unknown).
--          Mode 'batch' appends many events in one call: KEYS[1..n] and, after the mode, 11
--          arguments per key in the order above (event id ... hash), applied in order.
-- Returns  {status, ids, ts, vs, ks, profile or nil, exposure or nil, stored hash or nil} after
--          the call; in batch mode one such reply per key, in order.
--          status: 1 applied, 0 duplicate event id (same content, or a content unknown),
--          4 the event id is stored with other content (the stored hash is returned),
--          -1 offset already applied (redelivery), 2 older than every event of a full window
--          (no change), 3 read.
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

local UNKNOWN = string.rep('\0', 8)

-- Whether two content hashes name different contents (an unknown hash never conflicts).
local function differ(a, b)
  return a ~= '' and b ~= UNKNOWN and a ~= b
end

-- One append (or read) on one key; a = the 11 per-event arguments (see ARGV above).
local function apply(key, mode, a)
  -- One read and (below) one write of the hash per append: redis.call is the costly part.
  local ofield = mode == 'append' and a[6] or ''
  local f
  if ofield ~= '' then
    f = redis.call('HMGET', key, 'ids', 'ts', 'vs', 'ks', 'p', 'x', 'hs', ofield)
  else
    f = redis.call('HMGET', key, 'ids', 'ts', 'vs', 'ks', 'p', 'x', 'hs')
  end
  local ids, ts, vs, ks, hs = f[1] or '', f[2] or '', f[3] or '', f[4] or '', f[7] or ''
  if #hs ~= #ts then hs = string.rep(UNKNOWN, #ts / 8) end
  local status = 3
  local stored_hash = false

  if mode == 'append' then
    local event_id, t, kind, vec = a[1], tonumber(a[2]), a[3], a[4]
    local is_profile = a[5] == '1'
    local offset = tonumber(a[7])
    local window, ttl = tonumber(a[8]), tonumber(a[9])
    local hash = a[11] or ''
    local writes = {}
    status = 1
    if ofield ~= '' and f[8] and tonumber(f[8]) >= offset then status = -1 end
    if status == 1 and is_profile then
      local meta = redis.call('HMGET', key, 'pid', 'pt', 'ph')
      if meta[1] == event_id then
        status = 0
        if meta[3] and differ(hash, meta[3]) then status, stored_hash = 4, meta[3] end
      elseif (not meta[2]) or tonumber(meta[2]) <= t then
        redis.call('HSET', key, 'p', vec, 'pt', t, 'pid', event_id, 'ph',
                   hash ~= '' and hash or UNKNOWN)
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
      local at = string.find('\0' .. ids, '\0' .. event_id .. '\0', 1, true)
      if at then
        status = 0
        local index = select(2, string.gsub(string.sub(ids, 1, at - 1), '%z', ''))
        local old = string.sub(hs, 8 * index + 1, 8 * index + 8)
        if differ(hash, old) then status, stored_hash = 4, old end
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
          local h = hash ~= '' and hash or UNKNOWN
          hs = string.sub(hs, 1, 8 * k) .. h .. string.sub(hs, 8 * k + 1)
          if drop > 0 then
            ids = string.sub(ids, after(ids, drop) + 1)
            ks = string.sub(ks, after(ks, drop) + 1)
            ts = string.sub(ts, 8 * drop + 1)
            vs = string.sub(vs, d * drop + 1)
            hs = string.sub(hs, 8 * drop + 1)
          end
          writes = {'ids', ids, 'ts', ts, 'vs', vs, 'ks', ks, 'hs', hs}
        end
      end
    end
    if status ~= -1 and ofield ~= '' then
      writes[#writes + 1] = ofield
      writes[#writes + 1] = offset
    end
    if #writes > 0 then redis.call('HSET', key, unpack(writes)) end
    redis.call('EXPIRE', key, ttl)
  end

  return {status, ids, ts, vs, ks, f[5], f[6], stored_hash}
end

local mode = ARGV[1]
if mode ~= 'batch' then
  return apply(KEYS[1], mode, {unpack(ARGV, 2)})
end
local replies = {}
for i = 1, #KEYS do
  local base = 1 + 11 * (i - 1)
  replies[i] = apply(KEYS[i], 'append', {unpack(ARGV, base + 1, base + 11)})
end
return replies
