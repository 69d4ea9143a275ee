import { type DataSource, In, IsNull, type Repository } from 'typeorm';
import { type Gpu, type Runner } from '../../../domain/runners/runner';
import { type RunnerRepository } from '../../../domain/runners/runner.repository';
import { type Page, type PageRequest } from '../../../domain/shared/pagination';
import { RunnerEntity } from '../entities/runner.entity';
import { keysetPage } from './keyset';

export class TypeOrmRunnerRepository implements RunnerRepository {
  private readonly repo: Repository<RunnerEntity>;

  constructor(ds: DataSource) {
    this.repo = ds.getRepository(RunnerEntity);
  }

  async insert(r: {
    name: string;
    hostname: string;
    gpus: Gpu[];
    keyId: string;
    at: Date;
  }): Promise<Runner> {
    const row = await this.repo.save(
      this.repo.create({
        name: r.name,
        hostname: r.hostname,
        gpus: r.gpus,
        keyId: r.keyId,
        registeredAt: r.at,
        lastHeartbeatAt: r.at,
        stoppedAt: null,
      }),
    );
    return toDomain(row);
  }

  async findByIds(ids: readonly string[]): Promise<Runner[]> {
    if (ids.length === 0) return [];
    return (await this.repo.findBy({ id: In([...ids]) })).map(toDomain);
  }

  async heartbeat(id: string, at: Date): Promise<Runner | null> {
    await this.repo.update({ id, stoppedAt: IsNull() }, { lastHeartbeatAt: at });
    const row = await this.repo.findOneBy({ id });
    return row ? toDomain(row) : null;
  }

  async stop(id: string, at: Date): Promise<Runner | null> {
    await this.repo.update({ id, stoppedAt: IsNull() }, { stoppedAt: at });
    const row = await this.repo.findOneBy({ id });
    return row ? toDomain(row) : null;
  }

  async list(page: PageRequest): Promise<Page<Runner>> {
    const p = await keysetPage(this.repo.createQueryBuilder('r'), 'r', 'registered_at', page);
    return { ...p, items: p.items.map(toDomain) };
  }
}

function toDomain(r: RunnerEntity): Runner {
  return {
    id: r.id,
    name: r.name,
    hostname: r.hostname,
    gpus: r.gpus,
    keyId: r.keyId,
    registeredAt: r.registeredAt,
    lastHeartbeatAt: r.lastHeartbeatAt,
    stoppedAt: r.stoppedAt,
  };
}
