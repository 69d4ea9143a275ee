import { type Page, type PageRequest } from './pagination';

/**
 * A record a batch writer could not store because of its content (a poison row): set aside
 * with why, so the batch it came in, and everything queued behind it, is written without it.
 */
export interface DeadLetter {
  /** The writer, e.g. `prediction_log`. */
  source: string;
  /** The database's verdict. */
  error: string;
  payload: unknown;
}

export interface StoredDeadLetter {
  id: string;
  source: string;
  error: string;
  /** The payload as JSON text, with characters no database text can hold shown escaped. */
  payload: string;
  createdAt: Date;
}

/** Port: where poison rows go. */
export interface DeadLetterStore {
  put(letters: readonly DeadLetter[]): Promise<void>;
  list(source: string | null, page: PageRequest): Promise<Page<StoredDeadLetter>>;
}

/** What an ADMIN reads of the dead letters (`deadLetters` in the graph). */
export class DeadLetterService {
  constructor(private readonly store: DeadLetterStore) {}

  list(source: string | null, page: PageRequest): Promise<Page<StoredDeadLetter>> {
    return this.store.list(source, page);
  }
}
