import { ApiKeyResolver } from './api-key.resolver';
import { NodeResolver } from './node.resolver';
import { RunnerResolver } from './runner.resolver';

export const resolvers = [NodeResolver, ApiKeyResolver, RunnerResolver] as const;
