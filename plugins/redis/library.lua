-- The part of the redis plugin's policy that must run inside Redis to be
-- atomic. It is one script: every request the plugin sends is an EvalMany
-- of it (one call per record touched, all pipelined in one round trip;
-- on a single node the calls of a batch are packed into one, see '*'),
-- and each call names its operation in ARGV[1].
--
-- Rules every operation keeps:
--   * it touches only the keys in KEYS (the host prefixes them with the
--     backend's namespace, and its Redis user reaches nothing else);
--   * the keys of one call share a hash slot (one agent's {tag}, one
--     alert's, or the {idx} slot of the global indexes), but for the '+'
--     and '*' forms, which a cluster refuses (CROSSSLOT, before running);
--   * a record's expiry is set in the same call as the record, never later.
--
-- Expiry specs (the "ttl" argument): 'p' = no expiry; '<ms>' = expire at
-- that Unix millisecond; 'k' or 'k<ms>' = keep the expiry of an existing
-- record, and give a new one none or <ms>. Expiries are answered as Unix
-- milliseconds, -1 for none: what PEXPIRETIME answers afterwards.
--
-- Global indexes (one per kind, all in the {idx} slot) are three keys:
--   L  a sorted set, every score 0, members the record IDs: ZRANGE BYLEX
--      serves ordered, cursor-paginated listings;
--   X  a sorted set, the same members scored by an upper bound of the
--      record's expiry (inf when unknown or never): writers sweep members
--      whose bound has passed, so the entries of expired records do not
--      pile up even when nobody queries;
--   T  a hash, member -> the {idx} node's time (ms) of the last write that
--      indexed it: an entry whose record is missing is trimmed only when
--      no write touched it for a grace period, since the record and index
--      calls of one write may run in either order on a cluster.

local call, KEYS, ARGV, tonumber, floor = redis.call, KEYS, ARGV, tonumber, math.floor

-- clock answers the Redis time in microseconds, read once per script
-- call (TIME costs a redis.call and a table) at its first use. Times in
-- ms are floor(clock() / 1000), below 1e14: exact through tostring
-- (%.14g) and concatenation, as in a redis.call argument (%.17g), while
-- microseconds (16 digits) are exact only in the latter. ticks counts
-- the versions sput drew from the clock in this script call (see sput).
local now, ticks = nil, 0
-- light[i] is true when the i-th call of this script call's '*' wrote a
-- record whose index entry needs nothing but to be there (see run and
-- ixaddl).
local light = {}
local function clock()
  if not now then
    local t = call('TIME')
    now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  end
  return now
end

-- expiryOf answers the expiry (Unix ms, -1 for none) that spec gives
-- key, which existed or not, and true when spec keeps the existing
-- key's: 'p' none, '<ms>', 'k' or 'k<ms>' keep an existing record's,
-- else none or <ms>.
local function expiryOf(key, spec, existed)
  if string.byte(spec, 1) == 107 then
    if existed then return call('PEXPIRETIME', key), true end
    spec = string.sub(spec, 2)
    if spec == '' then return -1, false end
  end
  if spec == 'p' then return -1, false end
  return tonumber(spec), false
end
-- setExpiry gives key, just written by HSET (which keeps a key's
-- expiry), the expiry e that expiryOf answered; had: the key may have
-- an expiry to clear.
local function setExpiry(key, e, kept, had)
  if kept then return end
  if e ~= -1 then
    call('PEXPIREAT', key, e)
  elseif had then
    call('PERSIST', key)
  end
end

-- tomb replaces the record at key with its tombstone: a hash of one
-- field, 'u', the time (ns, the writer's clock) of the delete, kept for
-- tombLife ms. A replayed write acknowledged before that time leaves the
-- record deleted, as it leaves alone a record written after it; every
-- read takes a tombstone for no record (it has no 'v' nor 't'), and a
-- write over it makes a record, clearing its expiry. fields are the
-- record's others, removed. HSET goes first: Redis refuses it when out
-- of memory, and the delete is then refused whole, nothing removed, as
-- a write is (its event could not be appended either).
local tombLife = 86400000
local function tomb(key, u, fields)
  call('HSET', key, 'u', u)
  call('HDEL', key, unpack(fields))
  call('PEXPIRE', key, tombLife)
end
-- fenced guards the replay of a buffered metric write, which has no
-- time of its own to compare (see fallback.go): fkey is its buffer's
-- fence for the sample's agent, token the number of the replay attempt
-- that sent it (counted in the buffer's kv store, so a later attempt's
-- is higher). A copy an earlier attempt sent, whose reply was lost and
-- which a network delivers after a later attempt replayed the agent's
-- writes, finds a higher token there and is left out: fenced answers
-- the fence's number, which the caller answers as {3, number} (a live
-- replayer that gets it has been overtaken by a later attempt, or
-- counts from below the fence: it stops, and numbers its next attempt
-- above it). Otherwise the call stamps the fence, kept as long as a
-- tombstone, and fenced answers nil. The calls of one script call come
-- from one attempt: a fence is looked at, and stamped, once per script
-- call (checked: the fence's number, or false).
local checked = {}
local function fenced(fkey, token)
  local seen = checked[fkey]
  if seen ~= nil then return seen or nil end
  local f = call('GET', fkey)
  if f and tonumber(f) > tonumber(token) then
    seen = tonumber(f)
  else
    call('SET', fkey, token, 'PX', tombLife)
    seen = false
  end
  checked[fkey] = seen
  return seen or nil
end
local stateOthers = {'v', 'd', 'e'}
local alertOthers = {'g', 's', 't', 'm', 'l', 'c', 'x'}

-- unindex removes the members of ids from the global index of keys kl,
-- kx, kt.
local function unindex(kl, kx, kt, ids)
  if #ids > 0 then
    call('ZREM', kl, unpack(ids))
    call('ZREM', kx, unpack(ids))
    call('HDEL', kt, unpack(ids))
  end
end
-- ixadd indexes records just written in the global index of keys kl
-- (L), kx (X), kt (T), sweeping entries whose bound is slack ms past:
-- ARGV[i], ARGV[i + 1] for i = from, from + step, ... up to to are each
-- record's id and the bound of its expiry ('inf' or ms); with step 3,
-- ARGV[i + 2] is the number, in this script call's '*', of the call
-- that wrote the record ('0' for none known), and a record that call
-- wrote light gets only its entry in L. Answers how many records it
-- indexed.
local function ixadd(kl, kx, kt, slack, from, to, step)
  local ms = floor(clock() / 1000)
  local mss = tostring(ms) -- a string: HSET formats no number per entry
  local l, x, t, j, m = {}, {}, {}, 0, 0
  for i = from, to, step do
    local id = ARGV[i]
    l[j + 1], l[j + 2] = 0, id
    j = j + 2
    if step == 2 or not light[tonumber(ARGV[i + 2])] then
      x[m + 1], x[m + 2] = ARGV[i + 1], id
      t[m + 1], t[m + 2] = id, mss
      m = m + 2
    end
  end
  call('ZADD', kl, unpack(l))
  if m > 0 then
    call('ZADD', kx, 'GT', unpack(x))
    call('HSET', kt, unpack(t))
  end
  -- Sweep a few entries whose records have certainly expired (the slack
  -- covers clock differences between cluster nodes).
  unindex(kl, kx, kt, call('ZRANGEBYSCORE', kx, '-inf', '(' .. (ms - tonumber(slack)), 'LIMIT', 0, 16))
  return j / 2
end

-- serve runs the operation op of one call whose keys are KEYS[k + 1 ..
-- k + nk] and arguments ARGV[a + 1 .. a + na], op first (a call reads
-- its key i as KEYS[k + i] and its argument i as ARGV[a + i], and tells
-- an argument left out by na, since what follows may be another call's).
-- A write may answer one more value for the '+' form below: true when
-- the record existed and its index entry needs nothing but to be there
-- (see light).
local function serve(op, k, a, nk, na)

if op == 'sput' then
  -- Write an agent state if its condition holds. KEYS: state.
  -- ARGV: op, ttl, condition ('' none, 'a' absent, else the version it
  -- must have), updated_at, document[, floor: the least version to give,
  -- sent by the replay of a buffered write, see fallback.go].
  -- Answers {1, version, expiry} or {0} when the condition fails.
  --
  -- The version is max(old + 1, the clock in microseconds). It changes
  -- on every write (it is always above the old one), and it never
  -- repeats across a delete and a re-create, which a per-key counter
  -- would (a deleted key forgets its counter, and a stale client's
  -- IfVersion would then match the new record): a new record starts at
  -- the clock, which has moved past every version issued before, as each
  -- of those was at most the clock when its script call ended (a key
  -- cannot be written more than once a microsecond) -- unless the clock
  -- steps back, e.g. a failover to a replica whose clock is behind. The
  -- clock is read once per script call: the i-th version a call draws
  -- from it (i from 0) is clock() + i, so that a key deleted and
  -- re-created within one packed call still gets a version above the
  -- one it had, and a packed call that drew more than one waits, before
  -- it answers, until the real clock has reached the last (see '*'; it
  -- never has to where each write costs more than a microsecond, as
  -- all measured did). A store-wide counter would need a key outside the
  -- agent's slot, which a script may not touch on a cluster. Versions
  -- stay below 2^53, exact in Lua numbers, in a redis.call argument
  -- (%.17g) and in the integer reply that answers them.
  -- A restore (srestore) sets a version as given, one another host's
  -- clock or another backend's counter made: the next write is still
  -- above it (old + 1), but a re-create after a delete starts again at
  -- the clock, which may be below a restored version from a clock ahead.
  --
  -- A write stores the expiry it gives beside the record ('e'), so a
  -- record written without one needs no PERSIST when it is written again
  -- without one.
  local key, c = KEYS[k + 1], ARGV[a + 3]
  local cur = call('HMGET', key, 'v', 'e', 'u')
  local old = cur[1]
  if c == 'a' then
    if old then return {0} end
  elseif c ~= '' then
    if old ~= c then return {0} end
  end
  -- The replay of a buffered write (the one that sends a floor) does
  -- not replace a state written, nor bring back one deleted, after the
  -- write was acknowledged (through another host, which reached Redis
  -- meanwhile): {3}.
  if na >= 6 and cur[3] and tonumber(cur[3]) > tonumber(ARGV[a + 4]) then return {3} end
  local v = clock() + ticks
  ticks = ticks + 1
  if old then
    local o = tonumber(old) + 1
    if o > v then v = o end
  end
  if na >= 6 then
    local f = tonumber(ARGV[a + 6])
    if f > v then v = f end
  end
  local e, kept = expiryOf(key, ARGV[a + 2], old)
  call('HSET', key, 'v', v, 'u', ARGV[a + 4], 'd', ARGV[a + 5], 'e', e)
  local same = e == -1 and cur[2] == '-1'
  setExpiry(key, e, kept, (old and not same) or (not old and cur[3]))
  return {1, v, e}, same

elseif op == 'aput' then
  -- Create or replace an alert; a replace must be an allowed transition
  -- and keeps CreatedAt. KEYS: alert. ARGV: op, ttl, status, statuses it
  -- may be reached from, updated_at, created_at (for a new alert), agent,
  -- severity, message, labels[, '1' from the replay of a buffered write,
  -- which leaves alone an alert written, or deleted, after its
  -- updated_at: {3, ''}].
  -- Answers {1, created_at, expiry} or {0, current status}. Unlike
  -- sput, it does not trust the stored expiry ('x') to skip a PERSIST:
  -- hosts from before 'x' was written set an alert's expiry without it.
  local key = KEYS[k + 1]
  local cur = call('HMGET', key, 't', 'c', 'u')
  local existed, created = false, ARGV[a + 6]
  if na >= 11 and cur[3] and tonumber(cur[3]) > tonumber(ARGV[a + 5]) then return {3, ''} end
  if cur[1] then
    if not string.find(ARGV[a + 4], cur[1], 1, true) then return {0, cur[1]} end
    existed, created = true, cur[2] or created
  end
  local e, kept = expiryOf(key, ARGV[a + 2], existed)
  call('HSET', key, 'g', ARGV[a + 7], 's', ARGV[a + 8], 't', ARGV[a + 3], 'm', ARGV[a + 9], 'l', ARGV[a + 10], 'c', created, 'u', ARGV[a + 5], 'x', e)
  setExpiry(key, e, kept, existed or cur[3]) -- a tombstone's expiry too
  return {1, created, e}

elseif op == 'mput' or op == 'mrestore' then
  -- mput: write a metric sample and index it in its agent's indexes.
  -- KEYS: sample, name/time index (lex), expiry index (score = expiry
  -- ms)[, the buffer's replay fence of the agent, from the replay of a
  -- buffered write]. ARGV: op, ttl, member, value[, the replay attempt's
  -- token]. Answers its expiry, or {3, the fence's number} when fenced.
  -- mrestore: restore a metric sample as given and index it as mput
  -- does. KEYS: the same. ARGV: op, mode ('f' fail, 's' skip, 'o'
  -- overwrite), expiry ('p' or ms), member, value. Answers {1, expiry},
  -- {2} when the expiry has passed (nothing to restore), {0} when a live
  -- sample exists and the mode is not overwrite (an overwrite deletes the
  -- sample first, so nothing of it remains).
  local key, e, member = KEYS[k + 1]
  if op == 'mput' and nk >= 4 then
    local f = fenced(KEYS[k + 4], ARGV[a + 5])
    if f then return {3, f} end
  end
  if op == 'mput' then
    local spec, value = ARGV[a + 2], ARGV[a + 4]
    member = ARGV[a + 3]
    if string.byte(spec, 1) == 107 then
      if call('EXISTS', key) == 1 then
        call('SET', key, value, 'KEEPTTL')
        e = call('PEXPIRETIME', key)
      else
        spec = string.sub(spec, 2)
        if spec == '' then spec = 'p' end
      end
    end
    if not e then
      if spec == 'p' then
        call('SET', key, value)
        e = -1
      else
        call('SET', key, value, 'PXAT', spec)
        e = tonumber(spec)
      end
    end
  else
    local spec, value = ARGV[a + 3], ARGV[a + 5]
    member = ARGV[a + 4]
    if spec ~= 'p' and tonumber(spec) <= floor(clock() / 1000) then return {2} end
    if call('EXISTS', key) == 1 then
      if ARGV[a + 2] ~= 'o' then return {0} end
      call('DEL', key)
    end
    if spec == 'p' then
      call('SET', key, value)
      e = -1
    else
      call('SET', key, value, 'PXAT', spec)
      e = tonumber(spec)
    end
  end
  -- Index the sample: ix (lex), xx (expiry). The indexes live as long as
  -- their longest-lived sample; the expiry index holds exactly the
  -- expiring samples, with their expiry, and every write sweeps a few
  -- that have expired.
  local ix, xx = KEYS[k + 2], KEYS[k + 3]
  local had = call('EXISTS', ix)
  call('ZADD', ix, 0, member)
  if e == -1 then
    call('PERSIST', ix)
    call('ZREM', xx, member)
  else
    -- GT leaves a key without expiry alone: the index outlives e.
    if had == 0 then call('PEXPIREAT', ix, e) else call('PEXPIREAT', ix, e, 'GT') end
    had = call('EXISTS', xx)
    call('ZADD', xx, e, member)
    if had == 0 then call('PEXPIREAT', xx, e) else call('PEXPIREAT', xx, e, 'GT') end
  end
  local gone = call('ZRANGEBYSCORE', xx, '-inf', '(' .. floor(clock() / 1000), 'LIMIT', 0, 16)
  if #gone > 0 then
    call('ZREM', ix, unpack(gone))
    call('ZREM', xx, unpack(gone))
  end
  if op == 'mput' then return e end
  return {1, e}

elseif op == 'del' then
  -- Delete an alert, leaving its tombstone. KEYS: alert. ARGV: op, the
  -- delete's time (ns; for a replay, when it was acknowledged)[, '1' from
  -- the replay of a buffered delete]. Answers 1, 0 when there was none,
  -- 2 when a replayed delete finds the alert written after it.
  local f = call('HMGET', KEYS[k + 1], 't', 'u')
  if na >= 3 and f[2] and tonumber(f[2]) > tonumber(ARGV[a + 2]) then return 2 end
  if not f[1] then return 0 end
  tomb(KEYS[k + 1], ARGV[a + 2], alertOthers)
  return 1

elseif op == 'sdel' then
  -- Delete an agent state if its condition holds. KEYS: state.
  -- ARGV: op, condition ('' or the version it must have), the delete's
  -- time (ns; for a replay, when it was acknowledged)[, '1' from the
  -- replay of a buffered delete]. Leaves the state's tombstone.
  -- Answers 1, 0 when the condition fails, -1 when there is no state, 2
  -- when a replayed delete finds the state written after it (as sput).
  local cur = call('HMGET', KEYS[k + 1], 'v', 'u')
  local old = cur[1]
  if not old then return -1 end
  if ARGV[a + 2] ~= '' and old ~= ARGV[a + 2] then return 0 end
  if na >= 4 and cur[2] and tonumber(cur[2]) > tonumber(ARGV[a + 3]) then return 2 end
  tomb(KEYS[k + 1], ARGV[a + 3], stateOthers)
  return 1

elseif op == 'mdel' then
  -- Delete a metric sample. KEYS: sample, index, expiry index[, the
  -- replay fence, as for mput]. ARGV: op, member[, the replay attempt's
  -- token]. Answers 1, or 0 when there was no sample, {3, the fence's
  -- number} when fenced. The
  -- ZADD XX first changes nothing (every index member scores 0) but is
  -- refused when Redis is out of memory, as DEL is not: the delete is
  -- then refused whole, as every write, its event having no room either.
  if nk >= 4 then
    local f = fenced(KEYS[k + 4], ARGV[a + 3])
    if f then return {3, f} end
  end
  call('ZADD', KEYS[k + 2], 'XX', 0, ARGV[a + 2])
  local n = call('DEL', KEYS[k + 1])
  call('ZREM', KEYS[k + 2], ARGV[a + 2])
  call('ZREM', KEYS[k + 3], ARGV[a + 2])
  return n

elseif op == 'ixadd' then
  -- Index records just written. KEYS: L, X, T. ARGV: op, sweep slack
  -- (ms), then for each record its id and the bound of its expiry ('inf'
  -- or ms): a batch indexes all its records in one call.
  return ixadd(KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], ARGV[a + 2], a + 3, a + na, 2)

elseif op == 'ixaddl' then
  -- ixadd, each record also given the number of the call of this
  -- script call's '*' that wrote it, or 0: a record that call wrote
  -- light (see run) is only listed, as a single +sput does. A batch on
  -- a single node sends it packed after its writes; alone, no call of
  -- it is known and every record takes the full path.
  return ixadd(KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], ARGV[a + 2], a + 3, a + na, 3)

elseif op == 'rd' then
  -- Read one record and its expiry, atomically.
  -- KEYS: record. ARGV: op[, hash fields...] (none: a string record).
  local key, v = KEYS[k + 1]
  if na == 1 then
    v = call('GET', key)
  else
    v = call('HMGET', key, unpack(ARGV, a + 2, a + na))
  end
  return {v, call('PEXPIRETIME', key)}

elseif op == 'astat' then
  -- Move an alert to a status, keeping its expiry. KEYS: alert.
  -- ARGV: op, status, statuses it may be reached from, updated_at[, '1'
  -- from the replay of a buffered write].
  -- Answers {1, {fields g s t m l c u}, expiry}, {0, current status},
  -- {-1} when there is no alert, {3} when a replayed change finds the
  -- alert written after its updated_at.
  local key = KEYS[k + 1]
  local f = call('HMGET', key, 'g', 's', 't', 'm', 'l', 'c', 'u')
  if not f[3] then return {-1} end
  if na >= 5 and f[7] and tonumber(f[7]) > tonumber(ARGV[a + 4]) then return {3} end
  if not string.find(ARGV[a + 3], f[3], 1, true) then return {0, f[3]} end
  call('HSET', key, 't', ARGV[a + 2], 'u', ARGV[a + 4])
  f[3], f[7] = ARGV[a + 2], ARGV[a + 4]
  return {1, f, call('PEXPIRETIME', key)}

elseif op == 'mrange' then
  -- List an agent's index. KEYS: index. ARGV: op, min, max, count.
  -- Answers {exists, member...}.
  local out = call('ZRANGE', KEYS[k + 1], ARGV[a + 2], ARGV[a + 3], 'BYLEX', 'LIMIT', 0, ARGV[a + 4])
  table.insert(out, 1, call('EXISTS', KEYS[k + 1]))
  return out

elseif op == 'mget' then
  -- Read samples of one agent with their expiry, trimming the index
  -- entries of those that are gone (atomic within the agent's slot).
  -- KEYS: index, expiry index, sample... ARGV: op, member... (one per
  -- sample). Answers {value, expiry, value, expiry, ...}; a missing
  -- sample is {nil, -2}.
  local out = {}
  for i = 3, nk do
    local e = call('PEXPIRETIME', KEYS[k + i])
    if e == -2 then
      call('ZREM', KEYS[k + 1], ARGV[a + i - 1])
      call('ZREM', KEYS[k + 2], ARGV[a + i - 1])
      out[#out + 1] = false
    else
      out[#out + 1] = call('GET', KEYS[k + i])
    end
    out[#out + 1] = e
  end
  return out

elseif op == 'arestore' or op == 'srestore' then
  -- arestore: restore an alert as given: no transition is checked,
  -- created_at and updated_at are the given ones. KEYS: alert. ARGV: op,
  -- mode, expiry, agent, severity, status, message, labels, created_at,
  -- updated_at.
  -- srestore: restore an agent state with exactly its version (at most
  -- 2^53 - 2, so that sput's next version, above it, is exact). KEYS:
  -- state. ARGV: op, mode, expiry, version, updated_at, document.
  -- Both answer {1, expiry}, or {2} or {0} as mrestore does.
  local key, spec = KEYS[k + 1], ARGV[a + 3]
  if spec ~= 'p' and tonumber(spec) <= floor(clock() / 1000) then return {2} end
  local live = call('HEXISTS', key, op == 'arestore' and 't' or 'v') == 1
  if live and ARGV[a + 2] ~= 'o' then return {0} end
  call('UNLINK', key) -- the record overwritten, or a tombstone
  local e = expiryOf(key, spec, false)
  if op == 'arestore' then
    call('HSET', key, 'g', ARGV[a + 4], 's', ARGV[a + 5], 't', ARGV[a + 6], 'm', ARGV[a + 7], 'l', ARGV[a + 8], 'c', ARGV[a + 9], 'u', ARGV[a + 10], 'x', e)
  else
    call('HSET', key, 'v', ARGV[a + 4], 'u', ARGV[a + 5], 'd', ARGV[a + 6], 'e', e)
  end
  setExpiry(key, e, false, false)
  return {1, e}

elseif op == 'ixdel' then
  -- Unindex a record just deleted, unless a write indexed it within the
  -- grace period (it may be a re-create racing the delete; readers trim
  -- the entry later if its record stays missing).
  -- KEYS: L, X, T. ARGV: op, id, grace (ms).
  local t = call('HGET', KEYS[k + 3], ARGV[a + 2])
  if t and tonumber(t) >= floor(clock() / 1000) - tonumber(ARGV[a + 3]) then return 0 end
  unindex(KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], {ARGV[a + 2]})
  return 1

elseif op == 'ixrange' then
  -- List a global index. KEYS: L, T. ARGV: op, min, max, count.
  -- Answers {now ms, id, touched ms, id, touched ms, ...}.
  local ids = call('ZRANGE', KEYS[k + 1], ARGV[a + 2], ARGV[a + 3], 'BYLEX', 'LIMIT', 0, ARGV[a + 4])
  local out = {floor(clock() / 1000)}
  if #ids > 0 then
    local ts = call('HMGET', KEYS[k + 2], unpack(ids))
    for i = 1, #ids do
      out[#out + 1] = ids[i]
      out[#out + 1] = ts[i]
    end
  end
  return out

elseif op == 'ixtrim' then
  -- Trim entries a reader found without a record, each only if no write
  -- touched it since the reader listed it. KEYS: L, X, T.
  -- ARGV: op, id, touched ms ('' for none), id, touched ms, ...
  local ids = {}
  for i = a + 2, a + na, 2 do
    if (call('HGET', KEYS[k + 3], ARGV[i]) or '') == ARGV[i + 1] then ids[#ids + 1] = ARGV[i] end
  end
  unindex(KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], ids)
  return #ids
end
return redis.error_reply('storage-host redis library: unknown operation ' .. tostring(op))
end

-- run serves one call, of keys KEYS[k + 1 .. k + nk] and arguments
-- ARGV[a + 1 .. a + na]. A write whose operation is led by '+' (+sput,
-- +mput, +aput) indexes its record in the same call, where the deployment
-- lets one script touch the record's slot and the {idx} slot (a single
-- node; a cluster answers CROSSSLOT and the plugin sends the index call
-- apart): the last three keys are the global index's L, X, T, the last
-- three arguments its sweep slack, the record's id and its bound. The
-- record is indexed after it is written, and not when the write answers
-- {0} (a failed condition or transition: nothing was written).
--
-- An agent state rewritten without expiry over one without expiry keeps
-- an index entry that needs nothing but to be there (light): its bound
-- stays inf, and its write time in T matters only to a delete or a trim
-- racing a re-create, which takes the full path. Its entry is added
-- again (a record written before its index call ran keeps one), and one
-- such write in 16 (by the time in ms) sweeps, as every other write does.
local function run(k, a, nk, na)
  local op = ARGV[a + 1]
  if string.byte(op, 1) ~= 43 then return serve(op, k, a, nk, na) end
  local r, light = serve(string.sub(op, 2), k, a, nk - 3, na - 3)
  if type(r) == 'table' and (r.err or r[1] == 0) then return r end
  local kl, kx, kt, slack = KEYS[k + nk - 2], KEYS[k + nk - 1], KEYS[k + nk], ARGV[a + na - 2]
  if light then
    call('ZADD', kl, 0, ARGV[a + na - 1])
    local ms = floor(clock() / 1000)
    if ms % 16 == 0 then
      unindex(kl, kx, kt, call('ZRANGEBYSCORE', kx, '-inf', '(' .. (ms - tonumber(slack)), 'LIMIT', 0, 16))
    end
    return r
  end
  ixadd(kl, kx, kt, slack, a + na - 1, a + na, 2)
  return r
end

-- '*' runs many calls in one (the plugin packs a batch's calls this way
-- on a single node, where one script may touch every slot): ARGV[2] is
-- the number of calls n, ARGV[3 .. 2 + 2n] each call's number of keys
-- and of arguments (its operation included), then come the calls'
-- arguments one call after the other, as KEYS holds their keys. Answers
-- an array of each call's reply, in order; a call that fails answers its
-- error there and the calls after it still run, as in a pipeline. A call
-- that wrote light (see run) is noted in light, for the batch's ixaddl.
if ARGV[1] ~= '*' then return run(0, 0, #KEYS, #ARGV) end
local n = tonumber(ARGV[2])
local out, k, a = {}, 0, 2 + 2 * n
for i = 1, n do
  local nk, na = tonumber(ARGV[1 + 2 * i]), tonumber(ARGV[2 + 2 * i])
  local ok, r, lt = pcall(run, k, a, nk, na)
  if lt == true then light[i] = true end
  if not ok then
    if type(r) ~= 'table' or not r.err then r = redis.error_reply(tostring(r)) end
  elseif r == nil then
    r = false
  end
  out[i] = r
  k, a = k + nk, a + na
end
-- The versions drawn from the clock must not be ahead of it once the
-- call ends (see sput); a clock that stepped back below the call's
-- reading is not waited for, nor one that does not move (a script must
-- never spin in Redis): at most 64 readings, far more than the few
-- microseconds a call of many writes can be ahead.
if ticks > 1 then
  local last = now + ticks - 1
  local t, u, tries = nil, nil, 0
  repeat
    t = call('TIME')
    u = tonumber(t[1]) * 1000000 + tonumber(t[2])
    tries = tries + 1
  until u >= last or u < now or tries >= 64
end
return out
