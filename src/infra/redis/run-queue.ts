import type Redis from 'ioredis';
import { type Claim, type RunQueue } from '../../domain/training/run-queue';

/**
 * The run queue in Redis. Every operation that reads and changes the queue, the leases or a
 * runner's free GPUs is one Lua script, so Redis runs it alone: two runners claiming at once
 * are serialized, and a runner's allocated GPUs can never exceed its inventory.
 *
 * Keys (one hash tag, so a Redis Cluster keeps them in one slot):
 *   {rq}:queue          sorted set, run id scored by its submission seq (the FIFO order)
 *   {rq}:leases         sorted set, run id scored by lease expiry (epoch ms)
 *   {rq}:run:<id>       hash: seq, need (GPU count), mem (MB per GPU, 0: any), runner
 *                       and gpus while leased
 *   {rq}:free:<runner>  set of the runner's free GPU indexes
 *   {rq}:mem:<runner>   hash: GPU index → memory in MB (0 when unknown)
 *   {rq}:slots:<runner> runs the runner may still take; absent for an unknown runner
 */
const FREE_FN = `
local function free_run(base, id)
  local runKey = base .. 'run:' .. id
  local runner = redis.call('HGET', runKey, 'runner')
  if not runner then return false end
  local slotsKey = base .. 'slots:' .. runner
  if redis.call('EXISTS', slotsKey) == 1 then
    local gpus = redis.call('HGET', runKey, 'gpus')
    if gpus and gpus ~= '' then
      for g in string.gmatch(gpus, '[^,]+') do redis.call('SADD', base .. 'free:' .. runner, g) end
    end
    redis.call('INCR', slotsKey)
  end
  redis.call('ZREM', base .. 'leases', id)
  redis.call('HDEL', runKey, 'runner', 'gpus')
  return runner
end
local function owns(base, id, runner)
  return redis.call('HGET', base .. 'run:' .. id, 'runner') == runner
end
`;

const SCRIPTS = {
  // ARGV: base, runner, leaseUntil
  rqClaim: `
local base, runner = ARGV[1], ARGV[2]
local slotsKey = base .. 'slots:' .. runner
local slots = tonumber(redis.call('GET', slotsKey) or '0')
if slots < 1 then return false end
local head = redis.call('ZRANGE', base .. 'queue', 0, 0)
if #head == 0 then return false end
local id = head[1]
local runKey = base .. 'run:' .. id
local need = tonumber(redis.call('HGET', runKey, 'need') or '0')
local mem = tonumber(redis.call('HGET', runKey, 'mem') or '0')
local freeKey = base .. 'free:' .. runner
local free = redis.call('SMEMBERS', freeKey)
if #free < need then return false end
local nums = {}
for _, v in ipairs(free) do
  if mem == 0 or tonumber(redis.call('HGET', base .. 'mem:' .. runner, v) or '0') >= mem then
    nums[#nums + 1] = tonumber(v)
  end
end
if #nums < need then return false end
table.sort(nums)
local picked = {}
for i = 1, need do
  picked[i] = nums[i]
  redis.call('SREM', freeKey, nums[i])
end
redis.call('DECR', slotsKey)
redis.call('ZREM', base .. 'queue', id)
redis.call('ZADD', base .. 'leases', ARGV[3], id)
local gpus = table.concat(picked, ',')
redis.call('HSET', runKey, 'runner', runner, 'gpus', gpus)
return {id, gpus}`,
  // ARGV: base, id, runner, leaseUntil
  rqRenew: `${FREE_FN}
local base, id = ARGV[1], ARGV[2]
if not owns(base, id, ARGV[3]) then return 0 end
redis.call('ZADD', base .. 'leases', 'XX', ARGV[4], id)
return 1`,
  // ARGV: base, id, runner
  rqRelease: `${FREE_FN}
local base, id = ARGV[1], ARGV[2]
if not owns(base, id, ARGV[3]) then return 0 end
free_run(base, id)
redis.call('DEL', base .. 'run:' .. id)
return 1`,
  // ARGV: base, id, runner
  rqRequeue: `${FREE_FN}
local base, id = ARGV[1], ARGV[2]
if not owns(base, id, ARGV[3]) then return 0 end
free_run(base, id)
redis.call('ZADD', base .. 'queue', redis.call('HGET', base .. 'run:' .. id, 'seq'), id)
return 1`,
  // ARGV: base, now
  rqRequeueExpired: `${FREE_FN}
local base = ARGV[1]
local ids = redis.call('ZRANGEBYSCORE', base .. 'leases', '-inf', ARGV[2], 'LIMIT', 0, 1000)
for _, id in ipairs(ids) do
  free_run(base, id)
  local seq = redis.call('HGET', base .. 'run:' .. id, 'seq')
  if seq then redis.call('ZADD', base .. 'queue', seq, id) end
end
return ids`,
  // ARGV: base, id, seq, need, mem
  rqEnqueue: `
local base, id = ARGV[1], ARGV[2]
local runKey = base .. 'run:' .. id
if redis.call('HEXISTS', runKey, 'runner') == 1 then return 0 end
redis.call('HSET', runKey, 'seq', ARGV[3], 'need', ARGV[4], 'mem', ARGV[5])
return redis.call('ZADD', base .. 'queue', 'NX', ARGV[3], id)`,
  // ARGV: base, id
  rqRemove: `
local base, id = ARGV[1], ARGV[2]
local n = redis.call('ZREM', base .. 'queue', id)
if n == 1 then redis.call('DEL', base .. 'run:' .. id) end
return n`,
  // ARGV: base, runner, slots, then pairs of GPU index and memory (MB, 0: unknown)
  rqRegister: `
local base, runner = ARGV[1], ARGV[2]
redis.call('DEL', base .. 'free:' .. runner, base .. 'mem:' .. runner)
for i = 4, #ARGV, 2 do
  redis.call('SADD', base .. 'free:' .. runner, ARGV[i])
  redis.call('HSET', base .. 'mem:' .. runner, ARGV[i], ARGV[i + 1])
end
redis.call('SET', base .. 'slots:' .. runner, ARGV[3])
return 1`,
} as const;

type ScriptName = keyof typeof SCRIPTS;
type Scripted = Redis & Record<ScriptName, (...args: (string | number)[]) => Promise<unknown>>;

export class RedisRunQueue implements RunQueue {
  private readonly base: string;
  private readonly r: Scripted;

  constructor(redis: Redis, prefix: string) {
    this.base = `${prefix}{rq}:`;
    for (const [name, lua] of Object.entries(SCRIPTS)) {
      if (!(name in redis)) redis.defineCommand(name, { numberOfKeys: 0, lua });
    }
    this.r = redis as Scripted;
  }

  async registerRunner(
    runnerId: string,
    gpus: readonly { index: number; memoryMb: number | null }[],
    slots: number,
  ): Promise<void> {
    await this.r.rqRegister(
      this.base,
      runnerId,
      slots,
      ...gpus.flatMap((g) => [g.index, g.memoryMb ?? 0]),
    );
  }

  async retireRunner(runnerId: string): Promise<void> {
    await this.r.del(
      `${this.base}free:${runnerId}`,
      `${this.base}slots:${runnerId}`,
      `${this.base}mem:${runnerId}`,
    );
  }

  async enqueue(run: {
    id: string;
    seq: number;
    gpuCount: number;
    gpuMemoryMb: number | null;
  }): Promise<void> {
    await this.r.rqEnqueue(this.base, run.id, run.seq, run.gpuCount, run.gpuMemoryMb ?? 0);
  }

  async remove(runId: string): Promise<boolean> {
    return (await this.r.rqRemove(this.base, runId)) === 1;
  }

  async claim(runnerId: string, leaseUntil: number): Promise<Claim | null> {
    const got = (await this.r.rqClaim(this.base, runnerId, leaseUntil)) as [string, string] | null;
    if (!got) return null;
    return { runId: got[0], gpus: got[1] === '' ? [] : got[1].split(',').map(Number) };
  }

  async renew(runId: string, runnerId: string, leaseUntil: number): Promise<boolean> {
    return (await this.r.rqRenew(this.base, runId, runnerId, leaseUntil)) === 1;
  }

  async release(runId: string, runnerId: string): Promise<boolean> {
    return (await this.r.rqRelease(this.base, runId, runnerId)) === 1;
  }

  async requeue(runId: string, runnerId: string): Promise<boolean> {
    return (await this.r.rqRequeue(this.base, runId, runnerId)) === 1;
  }

  async requeueExpired(now: number): Promise<string[]> {
    return (await this.r.rqRequeueExpired(this.base, now)) as string[];
  }

  async positions(runIds: readonly string[]): Promise<(number | null)[]> {
    if (runIds.length === 0) return [];
    const p = this.r.pipeline();
    for (const id of runIds) p.zrank(`${this.base}queue`, id);
    const res = (await p.exec()) ?? [];
    return res.map(([err, rank]) => {
      if (err) throw err;
      return rank === null ? null : (rank as number) + 1;
    });
  }

  async head(): Promise<{ runId: string; seq: number } | null> {
    const [id, seq] = await this.r.zrange(`${this.base}queue`, 0, 0, 'WITHSCORES');
    return id === undefined ? null : { runId: id, seq: Number(seq) };
  }
}
