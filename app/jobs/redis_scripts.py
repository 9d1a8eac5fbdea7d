"""The Redis backend's Lua scripts (``app.jobs.redis_store``): each rule and the change it guards run as one script,
atomic across every process that shares the Redis. Every script's ``ARGV[1]`` is the key prefix; times are seconds
(the caller's wall clock). Pure strings: importing this module loads nothing.
"""

# Lua helpers every script starts with: end a run (its indexes follow), remove expired and surplus finished runs
# (remembering their ids), and fail the running runs whose worker went silent.
PRELUDE = """
local P = ARGV[1]
local function finish(id, status, now, err)
  local key = P .. 'run:' .. id
  local mode = redis.call('HGET', key, 'mode')
  local owner = redis.call('HGET', key, 'owner')
  redis.call('HSET', key, 'status', status, 'finished', now)
  if err and err ~= '' then redis.call('HSET', key, 'error', err) end
  redis.call('SREM', P .. 'running', id)
  if owner and owner ~= '' then redis.call('SREM', P .. 'owner:' .. mode .. ':' .. owner, id) end
  if mode then redis.call('LREM', P .. 'queue:' .. mode, 0, id) end
  -- 'finished' orders by time, then by when they ended (a sequence number before the id breaks ties, as the
  -- embedded manager's stable sort does): eviction takes the oldest first even within one clock tick.
  local before = redis.call('HGET', key, 'fin')
  if before then redis.call('ZREM', P .. 'finished', before) end
  local member = string.format('%012d:', redis.call('INCR', P .. 'seq')) .. id
  redis.call('HSET', key, 'fin', member)
  redis.call('ZADD', P .. 'finished', now, member)
end
local function evict(now, ttl, max_finished, kept)
  local gone = redis.call('ZRANGEBYSCORE', P .. 'finished', '-inf', '(' .. (now - ttl))
  local done = redis.call('ZCOUNT', P .. 'finished', '-inf', now)
  local overflow = done - #gone - max_finished
  if overflow > 0 then
    for _, member in ipairs(redis.call('ZRANGEBYSCORE', P .. 'finished', '-inf', now, 'LIMIT', #gone, overflow)) do
      table.insert(gone, member)
    end
  end
  for _, member in ipairs(gone) do
    local id = string.sub(member, 14)
    redis.call('DEL', P .. 'run:' .. id, P .. 'rec:' .. id)
    redis.call('ZREM', P .. 'finished', member)
    redis.call('ZREM', P .. 'paced', id)
    redis.call('SREM', P .. 'runs', id)
    redis.call('ZADD', P .. 'evicted', now, id)
  end
  local surplus = redis.call('ZCARD', P .. 'evicted') - kept
  if surplus > 0 then redis.call('ZREMRANGEBYRANK', P .. 'evicted', 0, surplus - 1) end
end
local function reap(now, timeout, reason)
  for _, id in ipairs(redis.call('SMEMBERS', P .. 'running')) do
    local beat = tonumber(redis.call('HGET', P .. 'run:' .. id, 'heartbeat') or '0')
    if now - beat > timeout then finish(id, 'failed', now, reason) end
  end
end
"""

# ARGV: prefix, boot candidate, id suffix, token, mode, params, extra, owner, now, lane ('worker'|'paced'),
# max_queue, max_per_owner, max_paced, ttl, max_finished, evicted kept, heartbeat timeout, stale reason.
SUBMIT = PRELUDE + """
local now = tonumber(ARGV[9])
local boot = redis.call('GET', P .. 'boot')
if not boot then boot = ARGV[2]; redis.call('SET', P .. 'boot', boot) end
reap(now, tonumber(ARGV[17]), ARGV[18])
evict(now, tonumber(ARGV[14]), tonumber(ARGV[15]), tonumber(ARGV[16]))
local id = boot .. ARGV[3]
local key = P .. 'run:' .. id
local mode, owner = ARGV[5], ARGV[8]
if ARGV[10] == 'worker' then
  local cap = tonumber(ARGV[12])
  if owner ~= '' and cap > 0 then
    local mine = redis.call('SCARD', P .. 'owner:' .. mode .. ':' .. owner)
    if mine >= cap then return {'owner_full', mine} end
  end
  local queued = redis.call('LLEN', P .. 'queue:' .. mode)
  if queued >= tonumber(ARGV[11]) then return {'queue_full', queued} end
  redis.call('HSET', key, 'token', ARGV[4], 'mode', mode, 'params', ARGV[6], 'extra', ARGV[7], 'owner', owner,
             'created', ARGV[9], 'status', 'queued', 'paced', '0', 'steps', 0, 'epochs', 0, 'last_step', 0,
             'last_epoch', 0)
  redis.call('RPUSH', P .. 'queue:' .. mode, id)
  if owner ~= '' then redis.call('SADD', P .. 'owner:' .. mode .. ':' .. owner, id) end
  redis.call('SADD', P .. 'runs', id)
  return {'ok', id, queued + 1}
end
local live = redis.call('ZCOUNT', P .. 'paced', '(' .. ARGV[9], '+inf')
if live >= tonumber(ARGV[13]) then return {'paced_full', live} end
redis.call('HSET', key, 'token', ARGV[4], 'mode', mode, 'params', ARGV[6], 'extra', ARGV[7], 'owner', owner,
           'created', ARGV[9], 'status', 'running', 'started', ARGV[9], 'paced', '1', 'heartbeat', ARGV[9])
redis.call('ZADD', P .. 'paced', '+inf', id)
redis.call('SADD', P .. 'running', id)  -- being computed: a web process dying now leaves it to the heartbeat check
redis.call('SADD', P .. 'runs', id)
return {'ok', id, 0}
"""

# ARGV: prefix, id, now, end, pace start, pace seconds, status, summary, error, records...
FINISH_PACED = PRELUDE + """
local key = P .. 'run:' .. ARGV[2]
if redis.call('HGET', key, 'status') ~= 'running' then return 0 end
for i = 10, #ARGV do redis.call('RPUSH', P .. 'rec:' .. ARGV[2], ARGV[i]) end
finish(ARGV[2], ARGV[7], ARGV[4], ARGV[9])
redis.call('HSET', key, 'pace_start', ARGV[5], 'pace_seconds', ARGV[6])
if ARGV[8] ~= '' then redis.call('HSET', key, 'summary', ARGV[8]) end
redis.call('ZADD', P .. 'paced', ARGV[4], ARGV[2])
return 1
"""

# ARGV: prefix, id, now, worker name. 1 if the run was queued and is now this worker's.
START = PRELUDE + """
local key = P .. 'run:' .. ARGV[2]
if redis.call('HGET', key, 'status') ~= 'queued' then return 0 end
redis.call('LREM', P .. 'queue:' .. redis.call('HGET', key, 'mode'), 0, ARGV[2])
redis.call('HSET', key, 'status', 'running', 'started', ARGV[3], 'heartbeat', ARGV[3], 'worker', ARGV[4])
redis.call('SADD', P .. 'running', ARGV[2])
return 1
"""

# ARGV: prefix, id, record JSON, kind, number (its step or epoch), step cap. 0 once the run has ended under it.
RECORD = PRELUDE + """
local key = P .. 'run:' .. ARGV[2]
if redis.call('HGET', key, 'status') ~= 'running' then return 0 end
if ARGV[4] == 'step' then
  if tonumber(redis.call('HGET', key, 'steps')) >= tonumber(ARGV[6]) then return 1 end
  redis.call('HINCRBY', key, 'steps', 1)
  redis.call('HSET', key, 'last_step', ARGV[5])
elseif ARGV[4] == 'epoch' then
  redis.call('HINCRBY', key, 'epochs', 1)
  redis.call('HSET', key, 'last_epoch', ARGV[5])
end
redis.call('RPUSH', P .. 'rec:' .. ARGV[2], ARGV[3])
return 1
"""

# ARGV: prefix, id, now.
BEAT = PRELUDE + """
local key = P .. 'run:' .. ARGV[2]
if redis.call('HGET', key, 'status') == 'running' then redis.call('HSET', key, 'heartbeat', ARGV[3]) end
return 1
"""

# ARGV: prefix, id, now, outcome ('ok'|'failed'), summary, error. The status it ended with (or had already).
FINISH = PRELUDE + """
local key = P .. 'run:' .. ARGV[2]
local status = redis.call('HGET', key, 'status')
if status ~= 'running' then return status end
if ARGV[4] == 'failed' then finish(ARGV[2], 'failed', ARGV[3], ARGV[6]); return 'failed' end
status = 'succeeded'
local err = ARGV[6]
if redis.call('HGET', key, 'cancel') == '1' then
  status = 'cancelled'
  err = redis.call('HGET', key, 'cancel_reason') or err
end
finish(ARGV[2], status, ARGV[3], err)
if ARGV[5] ~= '' then redis.call('HSET', key, 'summary', ARGV[5]) end
return status
"""

# ARGV: prefix, id, now, status it was read in, records kept (paced), summary, error. 1 if cancelled, 0 if the run
# changed meanwhile (the caller reads it again).
CANCEL = PRELUDE + """
local key = P .. 'run:' .. ARGV[2]
local status = redis.call('HGET', key, 'status')
local finished = tonumber(redis.call('HGET', key, 'finished') or '0')
local now = tonumber(ARGV[3])
if ARGV[4] == 'queued' then
  if status ~= 'queued' then return 0 end
elseif redis.call('HGET', key, 'paced') == '1' then
  if status == 'running' then return 0 end
  if finished <= now then return 0 end
  local kept = tonumber(ARGV[5])
  if kept == 0 then redis.call('DEL', P .. 'rec:' .. ARGV[2]) else redis.call('LTRIM', P .. 'rec:' .. ARGV[2], 0, kept - 1) end
  redis.call('ZADD', P .. 'paced', now, ARGV[2])
  redis.call('HSET', key, 'pace_start', ARGV[3], 'pace_seconds', 0)  -- what was released stays, all of it visible
else
  if status ~= 'running' then return 0 end
  redis.call('HSET', key, 'cancel', '1')
  return 1
end
redis.call('HSET', key, 'cancel', '1')
finish(ARGV[2], 'cancelled', ARGV[3], ARGV[7])
if ARGV[6] ~= '' then redis.call('HSET', key, 'summary', ARGV[6]) end
return 1
"""

# ARGV: prefix, now, heartbeat timeout, stale reason.
REAP = PRELUDE + """
reap(tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4])
return 1
"""
