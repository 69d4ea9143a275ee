import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import { buildSchema as buildSdl, isObjectType } from 'graphql';
import 'reflect-metadata';
import { Field, ObjectType, Query, Resolver, buildSchemaSync } from 'type-graphql';
import { buildAppSchema, printAppSchema } from '../src/app/schema';
import { guardSchema, requiredRole, UnguardedFieldError } from '../src/resolvers/guard';

const root = path.resolve(__dirname, '..');

describe('schema.graphql', () => {
  it('is current: regenerate with `npm run schema`', () => {
    const committed = fs.readFileSync(path.join(root, 'schema.graphql'), 'utf8');
    expect(printAppSchema()).toBe(committed);
  });

  it('generated typed operations are current: regenerate with `npm run codegen`', () => {
    // The codegen CLI is ESM-only under jest, so run it as a process into a scratch file.
    const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'aether-codegen-')), 'graphql.ts');
    const config = fs
      .readFileSync(path.join(root, 'codegen.yml'), 'utf8')
      .replace('test/generated/graphql.ts', out);
    const configFile = path.join(path.dirname(out), 'codegen.yml');
    fs.writeFileSync(configFile, config);
    const r = spawnSync(
      process.execPath,
      [
        path.join(root, 'node_modules/@graphql-codegen/cli/cjs/bin.js'),
        '--config',
        configFile,
        '--silent',
      ],
      {
        cwd: root,
        encoding: 'utf8',
        timeout: 120_000,
      },
    );
    expect(r.stderr).toBe('');
    const committed = fs.readFileSync(path.join(root, 'test/generated/graphql.ts'), 'utf8');
    expect(fs.readFileSync(out, 'utf8')).toBe(committed);
  });
});

describe('every field is guarded', () => {
  it('each Query, Mutation and Subscription field declares a role', () => {
    const schema = buildAppSchema();
    const roots = [schema.getQueryType(), schema.getMutationType(), schema.getSubscriptionType()];
    const fields = roots.flatMap((t) =>
      t ? Object.values(t.getFields()).map((f) => ({ type: t.name, f })) : [],
    );
    expect(fields.length).toBeGreaterThan(5);
    const unguarded = fields
      .filter(({ f }) => !requiredRole(f))
      .map(({ type, f }) => `${type}.${f.name}`);
    expect(unguarded).toEqual([]);
  });

  it('every role-bearing field anywhere in the schema is wrapped', () => {
    const schema = buildAppSchema();
    for (const type of Object.values(schema.getTypeMap())) {
      if (!isObjectType(type) || type.name.startsWith('__')) continue;
      for (const f of Object.values(type.getFields())) {
        if (requiredRole(f)) expect(f.resolve).toBeDefined();
      }
    }
  });

  it('refuses to build a schema with an unguarded root field', () => {
    @ObjectType()
    class Thing {
      @Field()
      name!: string;
    }
    @Resolver()
    class Leaky {
      @Query(() => Thing)
      leak(): Thing {
        return { name: 'secret' };
      }
    }
    const leaky = buildSchemaSync({ resolvers: [Leaky], validate: false });
    expect(() => guardSchema(leaky)).toThrow(UnguardedFieldError);
    expect(() => guardSchema(leaky)).toThrow('Query.leak has no @Allow(role)');
    expect(buildSdl('type Query { a: Int }')).toBeDefined();
  });
});
