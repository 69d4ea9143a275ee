// The jest project `cluster` (jest.config.js): its test files run against the local Redis
// Cluster that the global setup started (test/support/isolation.ts, docs/adr/0029).
process.env.AETHER_TEST_ON_CLUSTER = '1';
