import { Foundation1764000000000 } from './1764000000000-foundation';
import { FeatureStore1764100000000 } from './1764100000000-feature-store';

/** Every migration, in order. Listed explicitly so compiled and test builds agree. */
export const migrations = [Foundation1764000000000, FeatureStore1764100000000];
