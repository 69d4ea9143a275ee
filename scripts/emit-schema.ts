import fs from 'node:fs';
import path from 'node:path';
import { printAppSchema } from '../src/app/schema';

/** `npm run schema`: rewrite schema.graphql from the decorated classes. */
const file = path.resolve(__dirname, '..', '..', 'schema.graphql');
fs.writeFileSync(file, printAppSchema());
console.log(`wrote ${file}`);
