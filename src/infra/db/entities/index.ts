import { ApiKeyEntity } from './api-key.entity';
import { RunnerEntity } from './runner.entity';

export const entities = [ApiKeyEntity, RunnerEntity];
