import { type Principal } from '../domain/auth/api-key';
import { type Services } from '../app/services';
import { type Loaders } from './loaders';

/** What every resolver receives: who is calling, the domain services, per-request loaders. */
export interface GraphQLContext {
  principal: Principal;
  services: Services;
  loaders: Loaders;
}
