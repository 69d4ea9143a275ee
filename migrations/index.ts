import { Foundation1764000000000 } from './1764000000000-foundation';

/** Every migration, in order. Listed explicitly so compiled and test builds agree. */
export const migrations = [Foundation1764000000000];
