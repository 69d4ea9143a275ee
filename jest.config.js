/** @type {import('jest').Config} */
const swc = [
  '@swc/jest',
  {
    jsc: {
      parser: { syntax: 'typescript', decorators: true },
      transform: { legacyDecorator: true, decoratorMetadata: true },
      target: 'es2022',
    },
    // Keep import() native: ESM-only packages (hyparquet) load through jest's VM-module support.
    module: { type: 'commonjs', ignoreDynamic: true },
  },
];

const common = {
  testEnvironment: 'node',
  transform: { '^.+\\.ts$': swc },
  setupFiles: ['reflect-metadata'],
};

/**
 * The files whose Redis use differs on a Redis Cluster (scripts, pipelines, pub/sub, the run
 * queue, the online store, the key epoch, the rate limiter): run a second time against a local
 * cluster of three masters (docs/adr/0029). Streams with several consumers and fleet outcomes
 * are exercised on the cluster by test/fleet (processes, retraining-crashes).
 */
const onCluster = [
  'test/training-queue.test.ts',
  'test/online-store-cache.test.ts',
  'test/feature-parity.test.ts',
  'test/events-cross-process.test.ts',
  'test/security/revocation.test.ts',
  'test/security/query-limits.test.ts',
];

module.exports = {
  globalSetup: '<rootDir>/test/support/global-setup.ts',
  globalTeardown: '<rootDir>/test/support/global-teardown.ts',
  testTimeout: 60_000,
  reporters: ['default', '<rootDir>/test/support/stuck-suite-reporter.cjs'],
  maxWorkers: 2,
  projects: [
    {
      ...common,
      displayName: 'redis',
      roots: ['<rootDir>/src', '<rootDir>/test', '<rootDir>/gpu-runner'],
      testMatch: ['**/*.spec.ts', '**/*.test.ts'],
    },
    {
      ...common,
      displayName: 'cluster',
      roots: ['<rootDir>/test'],
      testMatch: onCluster.map((f) => `<rootDir>/${f}`),
      setupFiles: ['reflect-metadata', '<rootDir>/test/support/on-cluster.cjs'],
    },
  ],
};
