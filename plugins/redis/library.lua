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

local call = redis.call

local function nowms()
  local t = call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function fmt(n) return string.format('%.0f', n) end

-- expiryOf is the expiry, in Unix ms (-1: none), that spec gives key,
-- which existed or not, before it is written; kept is true when spec
-- keeps an existing key's expiry (setExpiry then leaves it alone).
local function expiryOf(key, spec, existed)
  if string.sub(spec, 1, 1) == 'k' then
    if existed then return call('PEXPIRETIME', key), true end
    spec = string.sub(spec, 2)
    if spec == '' then spec = 'p' end
  end
  if spec == 'p' then return -1, false end
  return tonumber(spec), false
end
-- setExpiry gives key, just written by HSET (which keeps an existing
-- key's expiry), the expiry e that expiryOf answered.
local function setExpiry(key, e, kept, existed)
  if kept then return end
  if e == -1 then
    if existed then call('PERSIST', key) end
  else
    call('PEXPIREAT', key, e)
  end
end
-- outlive makes key (an index) live at least until e (-1 = forever).
local function outlive(key, e, existed)
  if e == -1 then
    call('PERSIST', key)
  elseif existed == 0 then
    call('PEXPIREAT', key, e)
  else
    call('PEXPIREAT', key, e, 'GT') -- GT leaves a key without expiry alone
  end
end

-- mindex indexes a metric sample just written with expiry e (-1: none)
-- in its agent's indexes: ix (lex), xx (expiry). The indexes live as long
-- as their longest-lived sample; the expiry index holds exactly the
-- expiring samples, with their expiry, and every write sweeps a few that
-- have expired.
local function mindex(ix, xx, member, e)
  local had = call('EXISTS', ix)
  call('ZADD', ix, 0, member)
  outlive(ix, e, had)
  if e == -1 then
    call('ZREM', xx, member)
  else
    had = call('EXISTS', xx)
    call('ZADD', xx, e, member)
    outlive(xx, e, had)
  end
  local gone = call('ZRANGEBYSCORE', xx, '-inf', '(' .. fmt(nowms()), 'LIMIT', 0, 16)
  if #gone > 0 then
    call('ZREM', ix, unpack(gone))
    call('ZREM', xx, unpack(gone))
  end
end

-- restorable checks a restore of key (ARGV[2] its mode: 'f' fail, 's'
-- skip, 'o' overwrite; ARGV[3] its expiry, 'p' or ms) before it writes:
-- it answers nil when the restore may go on, else its reply: {2} when the
-- expiry has passed (nothing to restore), {0} when a live record with the
-- key exists and the mode is not overwrite. An overwrite deletes the
-- record first, so nothing of it remains.
local function restorable(key, ARGV)
  local spec = ARGV[3]
  if spec ~= 'p' and tonumber(spec) <= nowms() then return {2} end
  if call('EXISTS', key) == 1 then
    if ARGV[2] ~= 'o' then return {0} end
    call('DEL', key)
  end
  return nil
end

-- unindex removes ids from the global index of keys kl, kx, kt.
local function unindex(kl, kx, kt, ids)
  if #ids > 0 then
    call('ZREM', kl, unpack(ids))
    call('ZREM', kx, unpack(ids))
    call('HDEL', kt, unpack(ids))
  end
end
-- ixadd indexes records just written in the global index of keys kl
-- (L), kx (X), kt (T), sweeping entries whose bound is slack ms past: a[i],
-- a[i + 1] for i = from, from + 2, ... are each record's id and the bound
-- of its expiry ('inf' or ms); now is the time in ms, nil to read it.
-- Answers how many records it indexed.
local function ixadd(kl, kx, kt, slack, a, from, now)
  now = fmt(now or nowms())
  local l, x, t = {}, {}, {}
  for i = from, #a, 2 do
    local id = a[i]
    l[#l + 1], l[#l + 2] = 0, id
    x[#x + 1], x[#x + 2] = a[i + 1], id
    t[#t + 1], t[#t + 2] = id, now
  end
  call('ZADD', kl, unpack(l))
  call('ZADD', kx, 'GT', unpack(x))
  call('HSET', kt, unpack(t))
  -- Sweep a few entries whose records have certainly expired (the slack
  -- covers clock differences between cluster nodes).
  unindex(kl, kx, kt, call('ZRANGEBYSCORE', kx, '-inf', '(' .. fmt(tonumber(now) - tonumber(slack)), 'LIMIT', 0, 16))
  return #l / 2
end
-- serve runs the operation op of one call of keys KEYS and arguments
-- ARGV (op first). A write may answer two more values for the '+' form
-- below: the Redis time of the write in ms, and true when the record
-- existed and its index entry needs nothing but to be there (see light).
local function serve(op, KEYS, ARGV)

if op == 'rd' then
  -- Read one record and its expiry, atomically.
  -- KEYS: record. ARGV: op[, hash fields...] (none: a string record).
  local v
  if #ARGV == 1 then
    v = call('GET', KEYS[1])
  else
    v = call('HMGET', KEYS[1], unpack(ARGV, 2))
  end
  return {v, call('PEXPIRETIME', KEYS[1])}

elseif op == 'mput' then
  -- Write a metric sample and index it in its agent's indexes.
  -- KEYS: sample, name/time index (lex), expiry index (score = expiry ms).
  -- ARGV: op, ttl, member, value.
  local k, spec = KEYS[1], ARGV[2]
  local e
  if string.sub(spec, 1, 1) == 'k' then
    if call('EXISTS', k) == 1 then
      call('SET', k, ARGV[4], 'KEEPTTL')
      e = call('PEXPIRETIME', k)
    else
      spec = string.sub(spec, 2)
      if spec == '' then spec = 'p' end
    end
  end
  if not e then
    if spec == 'p' then
      call('SET', k, ARGV[4])
      e = -1
    else
      call('SET', k, ARGV[4], 'PXAT', spec)
      e = tonumber(spec)
    end
  end
  mindex(KEYS[2], KEYS[3], ARGV[3], e)
  return e

elseif op == 'mdel' then
  -- Delete a metric sample. KEYS: sample, index, expiry index.
  -- ARGV: op, member. Answers 1, or 0 when there was no sample.
  local n = call('DEL', KEYS[1])
  call('ZREM', KEYS[2], ARGV[2])
  call('ZREM', KEYS[3], ARGV[2])
  return n

elseif op == 'mrange' then
  -- List an agent's index. KEYS: index. ARGV: op, min, max, count.
  -- Answers {exists, member...}.
  local out = call('ZRANGE', KEYS[1], ARGV[2], ARGV[3], 'BYLEX', 'LIMIT', 0, ARGV[4])
  table.insert(out, 1, call('EXISTS', KEYS[1]))
  return out

elseif op == 'mget' then
  -- Read samples of one agent with their expiry, trimming the index
  -- entries of those that are gone (atomic within the agent's slot).
  -- KEYS: index, expiry index, sample... ARGV: op, member... (one per
  -- sample). Answers {value, expiry, value, expiry, ...}; a missing
  -- sample is {nil, -2}.
  local out = {}
  for i = 3, #KEYS do
    local e = call('PEXPIRETIME', KEYS[i])
    if e == -2 then
      call('ZREM', KEYS[1], ARGV[i - 1])
      call('ZREM', KEYS[2], ARGV[i - 1])
      out[#out + 1] = false
    else
      out[#out + 1] = call('GET', KEYS[i])
    end
    out[#out + 1] = e
  end
  return out

elseif op == 'aput' then
  -- Create or replace an alert; a replace must be an allowed transition
  -- and keeps CreatedAt. KEYS: alert. ARGV: op, ttl, status, statuses it
  -- may be reached from, updated_at, created_at (for a new alert), agent,
  -- severity, message, labels.
  -- Answers {1, created_at, expiry} or {0, current status}.
  local k = KEYS[1]
  local cur = call('HMGET', k, 't', 'c')
  local existed, created = false, ARGV[6]
  if cur[1] then
    if not string.find(ARGV[4], cur[1], 1, true) then return {0, cur[1]} end
    existed, created = true, cur[2] or created
  end
  local e, kept = expiryOf(k, ARGV[2], existed)
  call('HSET', k, 'g', ARGV[7], 's', ARGV[8], 't', ARGV[3], 'm', ARGV[9], 'l', ARGV[10], 'c', created, 'u', ARGV[5], 'x', fmt(e))
  setExpiry(k, e, kept, existed)
  return {1, created, e}

elseif op == 'astat' then
  -- Move an alert to a status, keeping its expiry. KEYS: alert.
  -- ARGV: op, status, statuses it may be reached from, updated_at.
  -- Answers {1, {fields g s t m l c u}, expiry}, {0, current status} or
  -- {-1} when there is no alert.
  local k = KEYS[1]
  local f = call('HMGET', k, 'g', 's', 't', 'm', 'l', 'c', 'u')
  if not f[3] then return {-1} end
  if not string.find(ARGV[3], f[3], 1, true) then return {0, f[3]} end
  call('HSET', k, 't', ARGV[2], 'u', ARGV[4])
  f[3], f[7] = ARGV[2], ARGV[4]
  return {1, f, call('PEXPIRETIME', k)}

elseif op == 'sput' then
  -- Write an agent state if its condition holds. KEYS: state.
  -- ARGV: op, ttl, condition ('' none, 'a' absent, else the version it
  -- must have), updated_at, document[, floor: the least version to give,
  -- sent by the replay of a buffered write, see fallback.go].
  -- Answers {1, version, expiry} or {0} when the condition fails.
  --
  -- The version is max(old + 1, the Redis clock in microseconds). It
  -- changes on every write (it is always above the old one), and it never
  -- repeats across a delete and a re-create, which a per-key counter
  -- would (a deleted key forgets its counter, and a stale client's
  -- IfVersion would then match the new record): a new record starts at
  -- the clock, which has moved past every version issued before, as each
  -- of those was at most the clock of its write (a key cannot be written
  -- more than once a microsecond) -- unless the clock steps back, e.g. a
  -- failover to a replica whose clock is behind. A store-wide counter
  -- would need a key outside the agent's slot, which a script may not
  -- touch on a cluster. Versions stay below 2^53, exact in Lua numbers.
  -- A restore (srestore) sets a version as given, one another host's
  -- clock or another backend's counter made: the next write is still
  -- above it (old + 1), but a re-create after a delete starts again at
  -- the clock, which may be below a restored version from a clock ahead.
  --
  -- A write stores the expiry it gives beside the record ('e'), so a
  -- record written without one needs no PERSIST when it is written again
  -- without one.
  local k, c = KEYS[1], ARGV[3]
  local cur = call('HMGET', k, 'v', 'e')
  local old = cur[1]
  if c == 'a' then
    if old then return {0} end
  elseif c ~= '' then
    if old ~= c then return {0} end
  end
  local t = call('TIME')
  local v = tonumber(t[1]) * 1000000 + tonumber(t[2])
  if old then
    local o = tonumber(old) + 1
    if o > v then v = o end
  end
  if ARGV[6] then
    local f = tonumber(ARGV[6])
    if f > v then v = f end
  end
  local vs = fmt(v)
  local e, kept = expiryOf(k, ARGV[2], old ~= false)
  call('HSET', k, 'v', vs, 'u', ARGV[4], 'd', ARGV[5], 'e', fmt(e))
  local same = e == -1 and cur[2] == '-1'
  if not same then setExpiry(k, e, kept, old ~= false) end
  return {1, vs, e}, tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), same

elseif op == 'mrestore' then
  -- Restore a metric sample as given and index it as mput does.
  -- KEYS: sample, index, expiry index. ARGV: op, mode, expiry ('p' or
  -- ms), member, value. Answers {1, expiry}, or what restorable answers.
  local k = KEYS[1]
  local no = restorable(k, ARGV)
  if no then return no end
  local e = -1
  if ARGV[3] == 'p' then
    call('SET', k, ARGV[5])
  else
    call('SET', k, ARGV[5], 'PXAT', ARGV[3])
    e = tonumber(ARGV[3])
  end
  mindex(KEYS[2], KEYS[3], ARGV[4], e)
  return {1, e}

elseif op == 'arestore' then
  -- Restore an alert as given: no transition is checked, created_at and
  -- updated_at are the given ones. KEYS: alert. ARGV: op, mode, expiry,
  -- agent, severity, status, message, labels, created_at, updated_at.
  -- Answers {1, expiry}, or what restorable answers.
  local k = KEYS[1]
  local no = restorable(k, ARGV)
  if no then return no end
  local e = -1
  if ARGV[3] ~= 'p' then e = tonumber(ARGV[3]) end
  call('HSET', k, 'g', ARGV[4], 's', ARGV[5], 't', ARGV[6], 'm', ARGV[7], 'l', ARGV[8], 'c', ARGV[9], 'u', ARGV[10], 'x', fmt(e))
  setExpiry(k, e, false, false)
  return {1, e}

elseif op == 'srestore' then
  -- Restore an agent state with exactly its version (at most 2^53 - 2, so
  -- that sput's next version, above it, is exact). KEYS: state. ARGV: op,
  -- mode, expiry, version, updated_at, document. Answers {1, expiry}, or
  -- what restorable answers.
  local k = KEYS[1]
  local no = restorable(k, ARGV)
  if no then return no end
  local e = -1
  if ARGV[3] ~= 'p' then e = tonumber(ARGV[3]) end
  call('HSET', k, 'v', ARGV[4], 'u', ARGV[5], 'd', ARGV[6], 'e', fmt(e))
  setExpiry(k, e, false, false)
  return {1, e}

elseif op == 'sdel' then
  -- Delete an agent state if its condition holds. KEYS: state.
  -- ARGV: op, condition ('' or the version it must have).
  -- Answers 1, 0 when the condition fails, -1 when there is no state.
  local old = call('HGET', KEYS[1], 'v')
  if not old then return -1 end
  if ARGV[2] ~= '' and old ~= ARGV[2] then return 0 end
  call('DEL', KEYS[1])
  return 1

elseif op == 'del' then
  -- Delete a record. KEYS: record. Answers 1, or 0 when there was none.
  return call('DEL', KEYS[1])

elseif op == 'ixadd' then
  -- Index records just written. KEYS: L, X, T. ARGV: op, sweep slack
  -- (ms), then for each record its id and the bound of its expiry ('inf'
  -- or ms): a batch indexes all its records in one call.
  return ixadd(KEYS[1], KEYS[2], KEYS[3], ARGV[2], ARGV, 3)

elseif op == 'ixdel' then
  -- Unindex a record just deleted, unless a write indexed it within the
  -- grace period (it may be a re-create racing the delete; readers trim
  -- the entry later if its record stays missing).
  -- KEYS: L, X, T. ARGV: op, id, grace (ms).
  local t = call('HGET', KEYS[3], ARGV[2])
  if t and tonumber(t) >= nowms() - tonumber(ARGV[3]) then return 0 end
  unindex(KEYS[1], KEYS[2], KEYS[3], {ARGV[2]})
  return 1

elseif op == 'ixrange' then
  -- List a global index. KEYS: L, T. ARGV: op, min, max, count.
  -- Answers {now ms, id, touched ms, id, touched ms, ...}.
  local ids = call('ZRANGE', KEYS[1], ARGV[2], ARGV[3], 'BYLEX', 'LIMIT', 0, ARGV[4])
  local out = {nowms()}
  if #ids > 0 then
    local ts = call('HMGET', KEYS[2], unpack(ids))
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
  for i = 2, #ARGV, 2 do
    if (call('HGET', KEYS[3], ARGV[i]) or '') == ARGV[i + 1] then ids[#ids + 1] = ARGV[i] end
  end
  unindex(KEYS[1], KEYS[2], KEYS[3], ids)
  return #ids
end
return redis.error_reply('storage-host redis library: unknown operation ' .. tostring(op))
end

-- run serves one call. A write whose operation is led by '+' (+sput,
-- +mput, +aput) indexes its record in the same call, where the deployment
-- lets one script touch the record's slot and the {idx} slot (a single
-- node; a cluster answers CROSSSLOT and the plugin sends the index call
-- apart): the last three KEYS are the global index's L, X, T, the last
-- three ARGV its sweep slack, the record's id and its bound. The record
-- is indexed after it is written, and not when the write answers {0} (a
-- failed condition or transition: nothing was written).
--
-- An agent state rewritten without expiry over one without expiry keeps
-- an index entry that needs nothing but to be there (light): its bound
-- stays inf, and its write time in T matters only to a delete or a trim
-- racing a re-create, which takes the full path. Its entry is added
-- again (a record written before its index call ran keeps one), and one
-- such write in 16 sweeps, as every other write does.
local function run(KEYS, ARGV)
  local op = ARGV[1]
  if string.byte(op, 1) ~= 43 then return serve(op, KEYS, ARGV) end
  local nk, na = #KEYS, #ARGV
  local ix = {KEYS[nk - 2], KEYS[nk - 1], KEYS[nk], ARGV[na - 2], ARGV[na - 1], ARGV[na]}
  KEYS[nk], KEYS[nk - 1], KEYS[nk - 2] = nil, nil, nil
  ARGV[na], ARGV[na - 1], ARGV[na - 2] = nil, nil, nil
  local r, now, light = serve(string.sub(op, 2), KEYS, ARGV)
  if type(r) == 'table' and (r.err or r[1] == 0) then return r end
  if light then
    call('ZADD', ix[1], 0, ix[5])
    if now % 16 == 0 then
      unindex(ix[1], ix[2], ix[3], call('ZRANGEBYSCORE', ix[2], '-inf', '(' .. fmt(now - tonumber(ix[4])), 'LIMIT', 0, 16))
    end
    return r
  end
  ixadd(ix[1], ix[2], ix[3], ix[4], ix, 5, now)
  return r
end

-- '*' runs many calls in one (the plugin packs a batch's calls this way
-- on a single node, where one script may touch every slot): ARGV[2] is
-- the number of calls n, ARGV[3 .. 2 + 2n] each call's number of keys
-- and of arguments (its operation included), then come the calls'
-- arguments one call after the other, as KEYS holds their keys. Answers
-- an array of each call's reply, in order; a call that fails answers its
-- error there and the calls after it still run, as in a pipeline.
if ARGV[1] ~= '*' then return run(KEYS, ARGV) end
local n = tonumber(ARGV[2])
local out, k, a = {}, 1, 3 + 2 * n
for i = 1, n do
  local nk, na = tonumber(ARGV[1 + 2 * i]), tonumber(ARGV[2 + 2 * i])
  local K, A = {}, {}
  for j = 1, nk do K[j] = KEYS[k + j - 1] end
  for j = 1, na do A[j] = ARGV[a + j - 1] end
  k, a = k + nk, a + na
  local ok, r = pcall(run, K, A)
  if not ok then
    if type(r) ~= 'table' or not r.err then r = redis.error_reply(tostring(r)) end
  elseif r == nil then
    r = false
  end
  out[i] = r
end
return out
