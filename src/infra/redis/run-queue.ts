import { type RedisClient } from './redis-client';
import { type Claim, type RunQueue } from '../../domain/training/run-queue';

/**
 * The run queue in Redis. Every operation that reads and changes the queue, the leases or a
 * runner's free GPUs is one Lua script, so Redis runs it alone: two runners claiming at once
 * are serialized, and a runner's allocated GPUs can never exceed its inventory.
 *
 * Four keys, declared by every script, sharing one hash tag (so a Redis Cluster keeps them in
 * one slot, and a script never touches a key it did not declare):
 *   KEYS[1] {rq}:queue    sorted set, run id scored by its submission seq (the FIFO order)
 *   KEYS[2] {rq}:leases   sorted set, run id scored by lease expiry (epoch ms)
 *   KEYS[3] {rq}:runs     hash: <id>:seq, <id>:need (GPU count), <id>:mem (MB per GPU, 0:
 *                         any), and <id>:runner, <id>:gpus while leased
 *   KEYS[4] {rq}:runners  hash: <runner>:slots (runs it may still take; absent for an
 *                         unknown runner), <runner>:free (free GPU indexes, comma-separated),
 *                         <runner>:mem (index=MB pairs, comma-separated; 0 when unknown)
 */
const FNS = `
local function csv(s)
  local out = {}
  if s then for g in string.gmatch(s, '[^,]+') do out[#out + 1] = g end end
  return out
end
local function free_run(id)
  local runner = redis.call('HGET', KEYS[3], id .. ':runner')
  if not runner then return false end
  if redis.call('HEXISTS', KEYS[4], runner .. ':slots') == 1 then
    local gpus = redis.call('HGET', KEYS[3], id .. ':gpus')
    if gpus and gpus ~= '' then
      local free = csv(redis.call('HGET', KEYS[4], runner .. ':free'))
      for _, g in ipairs(csv(gpus)) do free[#free + 1] = g end
      redis.call('HSET', KEYS[4], runner .. ':free', table.concat(free, ','))
    end
    redis.call('HINCRBY', KEYS[4], runner .. ':slots', 1)
  end
  redis.call('ZREM', KEYS[2], id)
  redis.call('HDEL', KEYS[3], id .. ':runner', id .. ':gpus')
  return runner
end
local function owns(id, runner)
  return redis.call('HGET', KEYS[3], id .. ':runner') == runner
end
`;

const SCRIPTS = {
  // ARGV: runner, leaseUntil
  rqClaim: `${FNS}
local runner = ARGV[1]
local slots = tonumber(redis.call('HGET', KEYS[4], runner .. ':slots') or '0')
if slots < 1 then return false end
local head = redis.call('ZRANGE', KEYS[1], 0, 0)
if #head == 0 then return false end
local id = head[1]
local need = tonumber(redis.call('HGET', KEYS[3], id .. ':need') or '0')
local mem = tonumber(redis.call('HGET', KEYS[3], id .. ':mem') or '0')
local free = csv(redis.call('HGET', KEYS[4], runner .. ':free'))
if #free < need then return false end
local memOf = {}
for _, pair in ipairs(csv(redis.call('HGET', KEYS[4], runner .. ':mem'))) do
  local i, m = string.match(pair, '([^=]+)=([^=]+)')
  memOf[i] = tonumber(m)
end
local nums = {}
for _, v in ipairs(free) do
  if mem == 0 or (memOf[v] or 0) >= mem then nums[#nums + 1] = tonumber(v) end
end
if #nums < need then return false end
table.sort(nums)
local picked, taken = {}, {}
for i = 1, need do
  picked[i] = nums[i]
  taken[tostring(nums[i])] = true
end
local rest = {}
for _, v in ipairs(free) do if not taken[v] then rest[#rest + 1] = v end end
redis.call('HSET', KEYS[4], runner .. ':free', table.concat(rest, ','))
redis.call('HINCRBY', KEYS[4], runner .. ':slots', -1)
redis.call('ZREM', KEYS[1], id)
redis.call('ZADD', KEYS[2], ARGV[2], id)
local gpus = table.concat(picked, ',')
redis.call('HSET', KEYS[3], id .. ':runner', runner, id .. ':gpus', gpus)
return {id, gpus}`,
  // ARGV: id, runner, leaseUntil
  rqRenew: `${FNS}
if not owns(ARGV[1], ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[2], 'XX', ARGV[3], ARGV[1])
return 1`,
  // ARGV: id, runner
  rqRelease: `${FNS}
local id = ARGV[1]
if not owns(id, ARGV[2]) then return 0 end
free_run(id)
redis.call('HDEL', KEYS[3], id .. ':seq', id .. ':need', id .. ':mem')
return 1`,
  // ARGV: id, runner
  rqRequeue: `${FNS}
local id = ARGV[1]
if not owns(id, ARGV[2]) then return 0 end
free_run(id)
redis.call('ZADD', KEYS[1], redis.call('HGET', KEYS[3], id .. ':seq'), id)
return 1`,
  // ARGV: now
  rqRequeueExpired: `${FNS}
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, 1000)
for _, id in ipairs(ids) do
  free_run(id)
  local seq = redis.call('HGET', KEYS[3], id .. ':seq')
  if seq then redis.call('ZADD', KEYS[1], seq, id) end
end
return ids`,
  // ARGV: id, seq, need, mem
  rqEnqueue: `
local id = ARGV[1]
if redis.call('HEXISTS', KEYS[3], id .. ':runner') == 1 then return 0 end
redis.call('HSET', KEYS[3], id .. ':seq', ARGV[2], id .. ':need', ARGV[3], id .. ':mem', ARGV[4])
return redis.call('ZADD', KEYS[1], 'NX', ARGV[2], id)`,
  // ARGV: id
  rqRemove: `
local id = ARGV[1]
local n = redis.call('ZREM', KEYS[1], id)
if n == 1 then redis.call('HDEL', KEYS[3], id .. ':seq', id .. ':need', id .. ':mem') end
return n`,
  // ARGV: runner, slots, free (comma-separated), mem (index=MB, comma-separated)
  rqRegister: `
local runner = ARGV[1]
redis.call('HSET', KEYS[4], runner .. ':slots', ARGV[2], runner .. ':free', ARGV[3], runner .. ':mem', ARGV[4])
return 1`,
  // ARGV: runner
  rqRetire: `
redis.call('HDEL', KEYS[4], ARGV[1] .. ':slots', ARGV[1] .. ':free', ARGV[1] .. ':mem')
return 1`,
  // ARGV: ids; returns which of them are leased (1) or not (0)
  rqLeased: `
local out = {}
for i, id in ipairs(ARGV) do out[i] = redis.call('HEXISTS', KEYS[3], id .. ':runner') end
return out`,
} as const;

type ScriptName = keyof typeof SCRIPTS;
type Scripted = RedisClient &
  Record<ScriptName, (...args: (string | number)[]) => Promise<unknown>>;

export class RedisRunQueue implements RunQueue {
  private readonly keys: [string, string, string, string];
  private readonly r: Scripted;

  constructor(redis: RedisClient, prefix: string) {
    const base = `${prefix}{rq}:`;
    this.keys = [`${base}queue`, `${base}leases`, `${base}runs`, `${base}runners`];
    for (const [name, lua] of Object.entries(SCRIPTS)) {
      if (!(name in redis)) redis.defineCommand(name, { numberOfKeys: 4, lua });
    }
    this.r = redis as Scripted;
  }

  async registerRunner(
    runnerId: string,
    gpus: readonly { index: number; memoryMb: number | null }[],
    slots: number,
  ): Promise<void> {
    await this.r.rqRegister(
      ...this.keys,
      runnerId,
      slots,
      gpus.map((g) => g.index).join(','),
      gpus.map((g) => `${g.index}=${g.memoryMb ?? 0}`).join(','),
    );
  }

  async retireRunner(runnerId: string): Promise<void> {
    await this.r.rqRetire(...this.keys, runnerId);
  }

  async enqueue(run: {
    id: string;
    seq: number;
    gpuCount: number;
    gpuMemoryMb: number | null;
  }): Promise<void> {
    await this.r.rqEnqueue(...this.keys, run.id, run.seq, run.gpuCount, run.gpuMemoryMb ?? 0);
  }

  async remove(runId: string): Promise<boolean> {
    return (await this.r.rqRemove(...this.keys, runId)) === 1;
  }

  async claim(runnerId: string, leaseUntil: number): Promise<Claim | null> {
    const got = (await this.r.rqClaim(...this.keys, runnerId, leaseUntil)) as
      [string, string] | null;
    if (!got) return null;
    return { runId: got[0], gpus: got[1] === '' ? [] : got[1].split(',').map(Number) };
  }

  async renew(runId: string, runnerId: string, leaseUntil: number): Promise<boolean> {
    return (await this.r.rqRenew(...this.keys, runId, runnerId, leaseUntil)) === 1;
  }

  async release(runId: string, runnerId: string): Promise<boolean> {
    return (await this.r.rqRelease(...this.keys, runId, runnerId)) === 1;
  }

  async requeue(runId: string, runnerId: string): Promise<boolean> {
    return (await this.r.rqRequeue(...this.keys, runId, runnerId)) === 1;
  }

  async requeueExpired(now: number): Promise<string[]> {
    return (await this.r.rqRequeueExpired(...this.keys, now)) as string[];
  }

  async positions(runIds: readonly string[]): Promise<(number | null)[]> {
    if (runIds.length === 0) return [];
    const p = this.r.pipeline();
    for (const id of runIds) p.zrank(this.keys[0], id);
    const res = (await p.exec()) ?? [];
    return res.map(([err, rank]) => {
      if (err) throw err;
      return rank === null ? null : (rank as number) + 1;
    });
  }

  async leased(runIds: readonly string[]): Promise<boolean[]> {
    if (runIds.length === 0) return [];
    const out = (await this.r.rqLeased(...this.keys, ...runIds)) as number[];
    return out.map((x) => x === 1);
  }

  async head(): Promise<{ runId: string; seq: number } | null> {
    const [id, seq] = await this.r.zrange(this.keys[0], 0, 0, 'WITHSCORES');
    return id === undefined ? null : { runId: id, seq: Number(seq) };
  }
}
