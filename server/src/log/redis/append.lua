-- Herald's append, run by Redis (server/src/log/redis/append.rs; herald-bench redis-alone runs it
-- too): dedupe, checks, seq, entry, retention and publish in one step, for entries of one room.
-- KEYS: meta, log, once, state, text. ARGV: retention, a fresh epoch (taken if the room has none),
-- the room's channel, '1' to publish (PUBLISH; 's': SPUBLISH, the room's shard channel on a Redis
-- Cluster; '0' not at all: the node publishes once replicas have it), then for each entry its
-- dedupe member, its JSON and what it is: '1' a message, 'r' a reply (a message), 'c' a change
-- (edit, delete, react), '0' another entry. The meta's 'd' counts the entries that are not
-- messages, so each entry's 'n', the room's messages so far, is its seq less 'd'.
--
-- The stream holds each entry's seq (its ID), time, dedupe member and count; its JSON is the field
-- named by its seq in the hash 'text'. A stream cannot be rewritten, and what XDEL removes stays in
-- the stream's memory (and snapshots) until its whole node goes; a hash field overwritten is gone,
-- so a deletion can take a message's words back. (Entries stored before this kept their JSON in the
-- stream, field 'm': they are read from there.)
--
-- A reply or change is checked against its message first, by the rule ChatMessage::apply states
-- in app/src/protocol.rs (the SQLite log applies that function itself): the message's state (what
-- changes made of it, as server/src/log/mod.rs's State) is its member '<seq> <json>' of the sorted
-- set 'state'. A deletion writes the message and its edits again without their text.
--
-- Returns {epoch, sent_at_ms, {seq..}, {outcome..}}, an outcome per entry: 0 stored, 1 a
-- duplicate (its seq), 2 changes nothing (the seq that made it so), 3 no such message, 4 not the
-- sender's, 5 deleted, 6 too many reactions (seq 0). One push carries every new entry.
local epoch = redis.call('HGET', KEYS[1], 'e')
if not epoch then
  epoch = ARGV[2]
  redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5])
  redis.call('HSET', KEYS[1], 'e', epoch, 's', 0)
end
local keep = tonumber(ARGV[1])
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local ms = string.format('%d', now)
local others = tonumber(redis.call('HGET', KEYS[1], 'd') or '0')
local counted = others
local seqs, outcomes, lines, last = {}, {}, {}, nil
-- The seq and the writes to the text hash and the dedupe set are kept here and made once, at the
-- end (a call holds at most 256 entries: APPEND_BATCH_MAX): a command per entry fewer each. What
-- this call wrote is read from here until then (a reply or change to an entry of the same call).
local next_seq = tonumber(redis.call('HGET', KEYS[1], 's') or '0')
local texts, text_order, onces, members = {}, {}, {}, {}

local function id_of(seq) return string.format('%d-0', seq) end

-- The JSON of the entry at seq, or nil if the room does not hold it.
local function held(seq)
  local got = redis.call('XRANGE', KEYS[2], id_of(seq), id_of(seq))
  if #got == 0 then return nil end
  local text = texts[string.format('%d', seq)] or redis.call('HGET', KEYS[5], string.format('%d', seq))
  if text then return text end
  local f = got[1][2]
  for j = 1, #f, 2 do
    if f[j] == 'm' then return f[j + 1] end
  end
  return nil
end

-- The state of message seq (nil if it never changed).
local function state_of(seq)
  local got = redis.call('ZRANGEBYSCORE', KEYS[4], seq, seq)
  if #got == 0 then return nil end
  return cjson.decode(string.sub(got[1], string.find(got[1], ' ', 1, true) + 1))
end

local function set_state(seq, state)
  if state.e and #state.e == 0 then state.e = nil end
  if state.r and #state.r == 0 then state.r = nil end
  redis.call('ZREMRANGEBYSCORE', KEYS[4], seq, seq)
  redis.call('ZADD', KEYS[4], seq, string.format('%d', seq) .. ' ' .. cjson.encode(state))
end

-- Writes entry seq again without its text.
local function wipe(seq)
  local json = held(seq)
  if not json then return end
  local entry = cjson.decode(json)
  entry.body = ''
  local key = string.format('%d', seq)
  if texts[key] then
    texts[key] = cjson.encode(entry)
  else
    redis.call('HSET', KEYS[5], key, cjson.encode(entry))
  end
end

-- Whether entry (decoded) applies to its message: the outcome (0 if it does), and the message's
-- state to write once the entry has its seq (nil for a reply).
local function check(entry, what)
  local fields = entry.fields or {}
  local target = fields.target or fields.reply_to
  if type(target) ~= 'number' then return 3 end
  local state = state_of(target)
  if state and state.d then return 5 end
  local message = held(target)
  if not message then return 3 end
  local original = cjson.decode(message)
  if original.type then return 3 end
  if what == 'r' then return 0 end
  state = state or {c = 0}
  local unchanged = math.max(target, state.c or 0)
  -- Only its author edits a message; its author or a moderator (kind `moderation`, stored only
  -- from one) deletes it: ChatMessage::apply's rule.
  if entry.type == 'edit' or (entry.type == 'delete' and entry.kind ~= 'moderation') then
    if original.author.id ~= entry.author.id then return 4 end
  end
  if entry.type == 'edit' then
    state.b = entry.body
    state.t = now
    state.e = state.e or {}
  elseif entry.type == 'delete' then
    wipe(target)
    for _, edit in ipairs(state.e or {}) do wipe(edit) end
    state = {d = entry.author, e = state.e}
  elseif entry.type == 'react' then
    local reactions, at, mine = state.r or {}, nil, nil
    for i, r in ipairs(reactions) do
      if r.emoji == fields.emoji then
        at = i
        for j, who in ipairs(r.by) do
          if who.id == entry.author.id then mine = j end
        end
      end
    end
    if fields.remove then
      if not mine then return 2, unchanged end
      table.remove(reactions[at].by, mine)
      if #reactions[at].by == 0 then table.remove(reactions, at) end
    else
      if mine then return 2, unchanged end
      if at then
        table.insert(reactions[at].by, entry.author)
      elseif #reactions >= 50 then
        return 6
      else
        table.insert(reactions, {emoji = fields.emoji, by = {entry.author}})
      end
    end
    state.r = reactions
  else
    return 3
  end
  return 0, state, target
end

for i = 5, #ARGV, 3 do
  local what = ARGV[i + 2]
  local dup = onces[ARGV[i]] or redis.call('ZSCORE', KEYS[3], ARGV[i])
  local outcome, state, target = 0, nil, nil
  if dup then
    outcome = 1
  elseif what == 'r' or what == 'c' then
    local entry = cjson.decode(ARGV[i + 1])
    outcome, state, target = check(entry, what)
    if outcome == 2 then dup = state end
    if what == 'c' and outcome == 0 and entry.type == 'edit' then
      state.e[#state.e + 1] = -1 -- its seq, once it has one
    end
  end
  if outcome ~= 0 then
    seqs[#seqs + 1] = tonumber(dup or 0)
    outcomes[#outcomes + 1] = outcome
  else
    next_seq = next_seq + 1
    local seq = next_seq
    local id = id_of(seq)
    if what ~= '1' and what ~= 'r' then others = others + 1 end
    local from = seq - keep + 1
    if from < 1 then from = 1 end
    redis.call('XADD', KEYS[2], 'MINID', id_of(from), id, 't', ms, 'o', ARGV[i],
      'n', string.format('%d', seq - others))
    local key = string.format('%d', seq)
    texts[key] = ARGV[i + 1]
    text_order[#text_order + 1] = key
    onces[ARGV[i]] = key
    members[#members + 1] = key
    members[#members + 1] = ARGV[i]
    if state then
      if state.e and state.e[#state.e] == -1 then state.e[#state.e] = seq end
      state.c = seq
      set_state(target, state)
    end
    seqs[#seqs + 1] = seq
    outcomes[#outcomes + 1] = 0
    lines[#lines + 1] = string.format('%d', seq) .. ' ' .. ms .. ' ' .. ARGV[i + 1]
    last = seq
  end
end
if last then
  local fields = {}
  for _, key in ipairs(text_order) do
    fields[#fields + 1] = key
    fields[#fields + 1] = texts[key]
  end
  redis.call('HSET', KEYS[5], unpack(fields))
  redis.call('ZADD', KEYS[3], unpack(members))
  redis.call('HSET', KEYS[1], 's', next_seq)
end
if others ~= counted then redis.call('HSET', KEYS[1], 'd', others) end
if last and last > keep then
  for k = 3, 4 do redis.call('ZREMRANGEBYSCORE', KEYS[k], '-inf', last - keep) end
  -- The texts that went with the trimmed entries: from the lowest that may be left ('h').
  -- (Without one, the texts this call's entries pushed out: a log from before texts were kept
  -- apart has none older.)
  local low = tonumber(redis.call('HGET', KEYS[1], 'h') or string.format('%d', last - keep - #lines + 1))
  if low < 1 then low = 1 end
  for gone = low, last - keep do redis.call('HDEL', KEYS[5], string.format('%d', gone)) end
  if low <= last - keep then redis.call('HSET', KEYS[1], 'h', last - keep + 1) end
end
if ARGV[4] ~= '0' and #lines > 0 then
  local publish = 'PUBLISH'
  if ARGV[4] == 's' then publish = 'SPUBLISH' end
  redis.call(publish, ARGV[3], epoch .. '\n' .. table.concat(lines, '\n'))
end
return {epoch, tonumber(ms), seqs, outcomes}
