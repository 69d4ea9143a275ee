import { type Page, type PageRequest } from '../shared/pagination';
import { type Gpu, type Runner } from './runner';

export interface RunnerRepository {
  insert(r: {
    name: string;
    hostname: string;
    gpus: Gpu[];
    keyId: string;
    at: Date;
  }): Promise<Runner>;
  findByIds(ids: readonly string[]): Promise<Runner[]>;
  /** Updates heartbeat time unless stopped; returns the runner afterwards, or null if absent. */
  heartbeat(id: string, at: Date): Promise<Runner | null>;
  stop(id: string, at: Date): Promise<Runner | null>;
  list(page: PageRequest): Promise<Page<Runner>>;
}
