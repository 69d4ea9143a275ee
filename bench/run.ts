import 'reflect-metadata';

// Benchmarks measure production behaviour: graphql-js and others skip development-only
// checks when NODE_ENV is production, as a deployment would run them.
process.env.NODE_ENV ??= 'production';

/** `npm run bench -- <name>`: runs bench/<name>.ts, which prints a table and writes bench/results/<name>.json. */
const name = process.argv[2];
if (!name || !/^[a-z0-9-]+$/.test(name)) {
  console.error('usage: npm run bench -- <name>   (e.g. features-online)');
  process.exit(2);
}
// eslint-disable-next-line @typescript-eslint/no-require-imports
const mod = require(`./${name}`) as { main(): Promise<void> };
mod.main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
