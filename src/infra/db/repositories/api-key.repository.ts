import { type DataSource, In, IsNull, type Repository } from 'typeorm';
import { type ApiKey } from '../../../domain/auth/api-key';
import {
  type ApiKeyChange,
  type ApiKeyRepository,
  type NewApiKey,
  type StoredApiKey,
} from '../../../domain/auth/api-key.repository';
import { type Permission, Role } from '../../../domain/auth/role';
import { type Page, type PageRequest } from '../../../domain/shared/pagination';
import { ApiKeyEntity } from '../entities/api-key.entity';
import { keysetPage } from './keyset';

export class TypeOrmApiKeyRepository implements ApiKeyRepository {
  private readonly repo: Repository<ApiKeyEntity>;

  constructor(ds: DataSource) {
    this.repo = ds.getRepository(ApiKeyEntity);
  }

  async insert(k: NewApiKey): Promise<ApiKey> {
    const saved = await this.repo.save(this.repo.create({ ...k, role: k.role }));
    const [row] = await this.repo.findBy({ id: saved.id });
    return toDomain(row);
  }

  async findByPrefix(prefix: string): Promise<StoredApiKey | null> {
    const row = await this.repo.findOneBy({ prefix });
    return row ? { ...toDomain(row), secretHash: row.secretHash } : null;
  }

  async findByIds(ids: readonly string[]): Promise<ApiKey[]> {
    if (ids.length === 0) return [];
    const rows = await this.repo.findBy({ id: In([...ids]) });
    return rows.map(toDomain);
  }

  async list(page: PageRequest, includeRevoked: boolean): Promise<Page<ApiKey>> {
    const qb = this.repo.createQueryBuilder('k');
    if (!includeRevoked) qb.where('k.revoked_at IS NULL');
    const p = await keysetPage(qb, 'k', 'created_at', page);
    return { ...p, items: p.items.map(toDomain) };
  }

  async revoke(id: string, at: Date): Promise<{ key: ApiKey; changed: boolean } | null> {
    const res = await this.repo.update({ id, revokedAt: IsNull() }, { revokedAt: at });
    const row = await this.repo.findOneBy({ id });
    return row ? { key: toDomain(row), changed: (res.affected ?? 0) > 0 } : null;
  }

  async update(id: string, change: ApiKeyChange): Promise<ApiKey | null> {
    const res = await this.repo.update(
      { id, revokedAt: IsNull() },
      {
        ...(change.role ? { role: change.role } : {}),
        ...(change.permissions ? { permissions: change.permissions } : {}),
      },
    );
    if (!res.affected) return null;
    const row = await this.repo.findOneBy({ id });
    return row ? toDomain(row) : null;
  }

  async touch(id: string, at: Date): Promise<void> {
    await this.repo.update({ id }, { lastUsedAt: at });
  }

  countActiveAdmins(): Promise<number> {
    return this.repo.countBy({ role: Role.ADMIN, revokedAt: IsNull() });
  }
}

function toDomain(r: ApiKeyEntity): ApiKey {
  return {
    id: r.id,
    name: r.name,
    role: r.role as Role,
    permissions: r.permissions as Permission[],
    prefix: r.prefix,
    createdAt: r.createdAt,
    createdById: r.createdById,
    lastUsedAt: r.lastUsedAt,
    revokedAt: r.revokedAt,
  };
}
