const fields = (n: number) => `{ viewer { ${'name '.repeat(n)}} }`;

/**
 * GraphQL documents that froze the server before query limits (issue 13), each under 1 MB,
 * and the reason each is refused for. Shared by test/security/query-limits.test.ts and
 * bench/abuse.ts.
 */
export const ATTACKS: { name: string; query: string; reason: string }[] = [
  { name: '10,000 repeated fields', query: fields(10_000), reason: 'TOO_MANY_TOKENS' },
  { name: '100,000 repeated fields', query: fields(100_000), reason: 'TOO_MANY_TOKENS' },
  {
    name: '10,000 fragment spreads',
    query: `{ viewer { ${'...F '.repeat(10_000)}} } fragment F on Viewer { name }`,
    reason: 'TOO_MANY_TOKENS',
  },
  { name: '500 repeated fields', query: fields(500), reason: 'REPEATED_FIELD' },
  {
    name: '300 conflicting aliased calls',
    query: `{ ${Array.from({ length: 300 }, (_, i) => `model(name: "m${i}") { name }`).join(' ')} }`,
    reason: 'REPEATED_FIELD',
  },
  {
    name: '150 aliases',
    query: `{ ${Array.from({ length: 150 }, (_, i) => `a${i}: viewer { name }`).join(' ')} }`,
    reason: 'TOO_MANY_ALIASES',
  },
  {
    name: '100 directives',
    query: `{ viewer { name ${'@include(if: true) '.repeat(100)}} }`,
    reason: 'TOO_MANY_DIRECTIVES',
  },
  {
    name: 'a fragment that doubles 30 times',
    query:
      `{ viewer { ...F0 } } ` +
      Array.from(
        { length: 30 },
        (_, i) => `fragment F${i} on Viewer { ...F${i + 1} ...F${i + 1} }`,
      ).join(' ') +
      ' fragment F30 on Viewer { name }',
    reason: 'REPEATED_FIELD',
  },
  {
    name: '100 aliased lists each expanding a fragment twice',
    query:
      `{ ${Array.from({ length: 100 }, (_, i) => `k${i}: apiKeys { edges { node { ...F createdBy { ...F } } } }`).join(' ')} } ` +
      'fragment F on ApiKey { id name role prefix createdAt lastUsedAt revokedAt permissions }',
    reason: 'TOO_MANY_FIELDS',
  },
  {
    name: '40 distinct fragments each repeating a field',
    query:
      `{ viewer { ${Array.from({ length: 40 }, (_, i) => `...F${i}`).join(' ')} } } ` +
      Array.from({ length: 40 }, (_, i) => `fragment F${i} on Viewer { name role }`).join(' '),
    reason: 'REPEATED_FIELD',
  },
];
