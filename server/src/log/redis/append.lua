-- Herald's append, run by Redis (server/src/log/redis.rs, APPEND; herald-bench redis-alone runs it
-- too): dedupe, seq, entry, retention and publish in one step, for one or more entries of one room.
-- KEYS: meta, log, once. ARGV: retention, a fresh epoch (taken if the room has none), the room's
-- channel, '1' to publish (PUBLISH; 's': SPUBLISH, the room's shard channel on a Redis Cluster; '0'
-- not at all: the node publishes once replicas have it), then for each entry its dedupe member, its JSON and '1' if it is a
-- message. The meta's 'd' counts the entries that are not messages (none before entries had
-- types), so each entry's 'n', the room's messages so far, is its seq less 'd'.
-- Returns {epoch, sent_at_ms, {seq..}, {duplicate..}}; one push carries every new entry.
local epoch = redis.call('HGET', KEYS[1], 'e')
if not epoch then
  epoch = ARGV[2]
  redis.call('DEL', KEYS[2], KEYS[3])
  redis.call('HSET', KEYS[1], 'e', epoch, 's', 0)
end
local keep = tonumber(ARGV[1])
local t = redis.call('TIME')
local ms = string.format('%d', t[1] * 1000 + math.floor(t[2] / 1000))
local others = tonumber(redis.call('HGET', KEYS[1], 'd') or '0')
local counted = others
local seqs, dups, lines, last = {}, {}, {}, nil
for i = 5, #ARGV, 3 do
  local dup = redis.call('ZSCORE', KEYS[3], ARGV[i])
  if dup then
    seqs[#seqs + 1] = tonumber(dup)
    dups[#dups + 1] = 1
  else
    local seq = redis.call('HINCRBY', KEYS[1], 's', 1)
    local id = string.format('%d', seq)
    if ARGV[i + 2] ~= '1' then others = others + 1 end
    redis.call('XADD', KEYS[2], 'MAXLEN', keep, id .. '-0', 'm', ARGV[i + 1], 't', ms, 'o', ARGV[i],
      'n', string.format('%d', seq - others))
    redis.call('ZADD', KEYS[3], seq, ARGV[i])
    seqs[#seqs + 1] = seq
    dups[#dups + 1] = 0
    lines[#lines + 1] = id .. ' ' .. ms .. ' ' .. ARGV[i + 1]
    last = seq
  end
end
if others ~= counted then redis.call('HSET', KEYS[1], 'd', others) end
if last and last > keep then redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', last - keep) end
if ARGV[4] ~= '0' and #lines > 0 then
  local publish = 'PUBLISH'
  if ARGV[4] == 's' then publish = 'SPUBLISH' end
  redis.call(publish, ARGV[3], epoch .. '\n' .. table.concat(lines, '\n'))
end
return {epoch, tonumber(ms), seqs, dups}
