import { type DataSource } from 'typeorm';
import {
  type DeadLetter,
  type DeadLetterStore,
  type StoredDeadLetter,
} from '../../domain/shared/dead-letter';
import { type Page, type PageRequest } from '../../domain/shared/pagination';
import { sqlKeysetPage } from './features/sql-keyset';
import { storableJson, storableText } from './storable-text';

interface Row {
  id: string;
  source: string;
  error: string;
  payload: string;
  created_at: Date;
}

export class SqlDeadLetterStore implements DeadLetterStore {
  constructor(private readonly ds: DataSource) {}

  async put(letters: readonly DeadLetter[]): Promise<void> {
    if (!letters.length) return;
    await this.ds.query(
      `INSERT INTO dead_letter (source, error, payload)
       SELECT * FROM unnest($1::text[], $2::text[], $3::text[])`,
      [
        letters.map((l) => l.source),
        letters.map((l) => storableText(l.error).slice(0, 2_000)),
        letters.map((l) => storableJson(l.payload)),
      ],
    );
  }

  async list(source: string | null, page: PageRequest): Promise<Page<StoredDeadLetter>> {
    const p = await sqlKeysetPage<Row>(
      this.ds,
      'dead_letter',
      source === null ? [] : ['source = $1'],
      source === null ? [] : [source],
      page,
    );
    return {
      ...p,
      items: p.items.map((r) => ({
        id: r.id,
        source: r.source,
        error: r.error,
        payload: r.payload,
        createdAt: r.created_at,
      })),
    };
  }
}
