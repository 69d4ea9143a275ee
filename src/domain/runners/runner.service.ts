import { type Principal } from '../auth/api-key';
import { Role } from '../auth/role';
import { type EventBus, Topics } from '../events/event-bus';
import { type Clock } from '../shared/clock';
import { NO_TRANSACTION, type UnitOfWork } from '../shared/unit-of-work';
import {
  ConflictError,
  DomainError,
  ErrorCategory,
  InvalidInputError,
  NotFoundError,
} from '../shared/domain-error';
import { type Page, type PageRequest } from '../shared/pagination';
import { type RunQueue } from '../training/run-queue';
import { type Gpu, type Runner, RunnerErrorCode } from './runner';
import { type RunnerRepository } from './runner.repository';

export enum RunnerEventKind {
  REGISTERED = 'REGISTERED',
  STOPPED = 'STOPPED',
}

export interface RunnerEvent {
  kind: RunnerEventKind;
  runnerId: string;
  at: string;
}

export interface RegisterRunnerInput {
  name: string;
  hostname: string;
  gpus: Gpu[];
  /** Runs taken at once; default one per GPU (one for a runner without GPUs). */
  slots?: number | null;
}

const MAX_GPUS = 64;
const MAX_SLOTS = 256;
/** CUDA device ordinals on one host; nothing real comes near. */
const MAX_GPU_INDEX = 1_023;
/** 16 TiB: far beyond any GPU, well inside exact integers. */
const MAX_GPU_MEMORY_MB = 16 * 1024 * 1024;

export class RunnerService {
  constructor(
    private readonly repo: RunnerRepository,
    private readonly events: EventBus,
    private readonly clock: Clock,
    private readonly queue: RunQueue,
    /** A runner's change and its event commit together (the outbox). */
    private readonly uow: UnitOfWork = NO_TRANSACTION,
  ) {}

  async register(actor: Principal, input: RegisterRunnerInput): Promise<Runner> {
    validate(input);
    const runner = await this.uow.run(async () => {
      const r = await this.repo.insert({
        name: input.name,
        hostname: input.hostname,
        gpus: input.gpus,
        keyId: actor.keyId,
        at: this.clock.now(),
      });
      await this.publish(RunnerEventKind.REGISTERED, r.id);
      return r;
    });
    await this.queue.registerRunner(
      runner.id,
      runner.gpus,
      input.slots ?? Math.max(1, runner.gpus.length),
    );
    return runner;
  }

  /** The runner, if `actor` may act for it and it has not stopped. */
  async ownedOnline(actor: Principal, id: string): Promise<Runner> {
    const r = await this.owned(actor, id);
    if (r.stoppedAt)
      throw new ConflictError(
        RunnerErrorCode.RUNNER_STOPPED,
        `Runner ${id} has stopped; register again`,
      );
    return r;
  }

  async heartbeat(actor: Principal, id: string): Promise<Runner> {
    await this.owned(actor, id);
    const r = await this.repo.heartbeat(id, this.clock.now());
    if (!r) throw notFound(id);
    if (r.stoppedAt)
      throw new ConflictError(
        RunnerErrorCode.RUNNER_STOPPED,
        `Runner ${id} has stopped; register again`,
      );
    return r;
  }

  async stop(actor: Principal, id: string): Promise<Runner> {
    await this.owned(actor, id);
    const r = await this.uow.run(async () => {
      const stopped = await this.repo.stop(id, this.clock.now());
      if (!stopped) throw notFound(id);
      await this.publish(RunnerEventKind.STOPPED, id);
      return stopped;
    });
    await this.queue.retireRunner(id);
    return r;
  }

  list(page: PageRequest): Promise<Page<Runner>> {
    return this.repo.list(page);
  }

  byIds(ids: readonly string[]): Promise<Runner[]> {
    return this.repo.findByIds(ids);
  }

  /** A runner key may only act for the runners it registered; an admin may act for any. */
  private async owned(actor: Principal, id: string): Promise<Runner> {
    const [r] = await this.repo.findByIds([id]);
    if (!r) throw notFound(id);
    if (actor.role !== Role.ADMIN && r.keyId !== actor.keyId) {
      throw new DomainError(
        ErrorCategory.FORBIDDEN,
        RunnerErrorCode.NOT_YOUR_RUNNER,
        `Runner ${id} belongs to another key`,
      );
    }
    return r;
  }

  private async publish(kind: RunnerEventKind, runnerId: string): Promise<void> {
    const event: RunnerEvent = { kind, runnerId, at: this.clock.now().toISOString() };
    await this.events.publish(Topics.runners, event);
  }
}

function notFound(id: string): NotFoundError {
  return new NotFoundError(RunnerErrorCode.RUNNER_NOT_FOUND, `No runner with id ${id}`);
}

function validate(input: RegisterRunnerInput): void {
  const bad = (msg: string, field: string) =>
    new InvalidInputError(RunnerErrorCode.INVALID_RUNNER, msg, { field });
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/.test(input.name))
    throw bad('Runner name must be 1-100 characters of letters, digits and . _ -', 'name');
  if (input.hostname.length === 0 || input.hostname.length > 255)
    throw bad('hostname must be 1-255 characters', 'hostname');
  if (input.gpus.length > MAX_GPUS)
    throw bad(`A runner may declare at most ${MAX_GPUS} GPUs`, 'gpus');
  if (
    input.slots != null &&
    (!Number.isInteger(input.slots) || input.slots < 1 || input.slots > MAX_SLOTS)
  )
    throw bad(`slots must be an integer from 1 to ${MAX_SLOTS}`, 'slots');
  const seen = new Set<number>();
  for (const g of input.gpus) {
    if (!Number.isInteger(g.index) || g.index < 0 || g.index > MAX_GPU_INDEX || seen.has(g.index))
      throw bad(
        `GPU indexes must be distinct integers from 0 to ${MAX_GPU_INDEX} (got ${g.index})`,
        'gpus',
      );
    if (
      g.memoryMb != null &&
      !(Number.isInteger(g.memoryMb) && g.memoryMb >= 0 && g.memoryMb <= MAX_GPU_MEMORY_MB)
    )
      throw bad(
        `GPU ${g.index} memoryMb must be an integer from 0 to ${MAX_GPU_MEMORY_MB}`,
        'gpus',
      );
    if (g.name.length > 200) throw bad(`GPU ${g.index} name is longer than 200 characters`, 'gpus');
    seen.add(g.index);
  }
}
