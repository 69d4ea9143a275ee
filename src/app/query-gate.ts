import { maxDepthRule } from '@escape.tech/graphql-armor-max-depth';
import {
  type DocumentNode,
  type FragmentDefinitionNode,
  GraphQLError,
  type GraphQLSchema,
  Kind,
  type OperationDefinitionNode,
  parse,
  type SelectionSetNode,
  specifiedRules,
  validate,
  type ValidationRule,
  visit,
} from 'graphql';
import { getComplexity, simpleEstimator, type ComplexityEstimator } from 'graphql-query-complexity';
import { MAX_PAGE_SIZE, PaginationErrorCode } from '../domain/shared/pagination';

/**
 * Limits on the shape of a GraphQL document, checked right after a token-capped parse and
 * before validation. GraphQL validation is not linear: OverlappingFieldsCanBeMerged compares
 * every pair of fields that share a response name (10,000 `name` fields took 28 s here), and
 * fragments can multiply fields. Each limit below bounds one of those factors, so whatever
 * passes validates in milliseconds and whatever fails is refused in microseconds.
 */
export interface QueryShapeLimits {
  /** Lexical tokens; the parser itself stops at this many. */
  maxTokens: number;
  /** Field selections with every fragment spread expanded where it is used. */
  maxFields: number;
  /** Fields sharing one response name in one selection set (fragments merged in). */
  maxSameNameFields: number;
  maxAliases: number;
  maxDirectives: number;
  maxFragmentSpreads: number;
  maxDepth: number;
  maxComplexity: number;
}

export const DEFAULT_QUERY_SHAPE: Omit<QueryShapeLimits, 'maxDepth' | 'maxComplexity'> = {
  maxTokens: 3_000,
  maxFields: 1_500,
  maxSameNameFields: 20,
  maxAliases: 100,
  maxDirectives: 50,
  maxFragmentSpreads: 200,
};

export enum QueryLimitReason {
  TOO_MANY_TOKENS = 'TOO_MANY_TOKENS',
  TOO_MANY_FIELDS = 'TOO_MANY_FIELDS',
  REPEATED_FIELD = 'REPEATED_FIELD',
  TOO_MANY_ALIASES = 'TOO_MANY_ALIASES',
  TOO_MANY_DIRECTIVES = 'TOO_MANY_DIRECTIVES',
  TOO_MANY_FRAGMENT_SPREADS = 'TOO_MANY_FRAGMENT_SPREADS',
  TOO_COMPLEX = 'TOO_COMPLEX',
}

function limitError(
  reason: QueryLimitReason,
  message: string,
  limit: number,
  found?: number,
): GraphQLError {
  return new GraphQLError(message, {
    extensions: {
      code: 'GRAPHQL_VALIDATION_FAILED',
      reason,
      limit,
      ...(found !== undefined ? { found } : {}),
      http: { status: 400 },
    },
  });
}

/** Page sizes must be valid before they are multiplied into a cost (a negative one would pay). */
function pageSize(args: Record<string, unknown>): number | undefined {
  for (const name of ['first', 'last'] as const) {
    const n = args[name];
    if (n === undefined || n === null) continue;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > MAX_PAGE_SIZE) {
      throw new GraphQLError(
        `\`${name}\` must be an integer between 1 and ${MAX_PAGE_SIZE} (got ${String(n)})`,
        {
          extensions: {
            code: 'BAD_USER_INPUT',
            reason: PaginationErrorCode.INVALID_PAGE_SIZE,
            argument: name,
            http: { status: 400 },
          },
        },
      );
    }
    return n;
  }
  return undefined;
}

/** Lists cost their page size times their children: `first: 100` of a heavy type is heavy. */
const connectionEstimator: ComplexityEstimator = ({ args, childComplexity }) => {
  const n = pageSize(args);
  return n === undefined ? undefined : 1 + n * Math.max(childComplexity, 1);
};

/** A bounded map that forgets its oldest entry: caches keyed by client text must not grow. */
class BoundedCache<K, V> {
  private readonly map = new Map<K, V>();
  constructor(private readonly max: number) {}
  get(k: K): V | undefined {
    return this.map.get(k);
  }
  set(k: K, v: V): void {
    if (this.map.size >= this.max) this.map.delete(this.map.keys().next().value as K);
    this.map.set(k, v);
  }
}

/**
 * The one place that decides whether a GraphQL document may run, for HTTP and websockets
 * alike: shape limits, validation (the specified rules plus the depth limit), and the cost
 * limit with every page size checked.
 */
export class QueryGate {
  readonly validationRules: ValidationRule[];
  private readonly specified: readonly ValidationRule[];
  private readonly estimators = [connectionEstimator, simpleEstimator({ defaultComplexity: 1 })];
  private readonly shapeChecked = new BoundedCache<string, DocumentNode>(1_000);
  private readonly validated = new WeakMap<DocumentNode, readonly GraphQLError[]>();
  private readonly costs = new WeakMap<DocumentNode, Map<string, number>>();

  constructor(
    private readonly schema: GraphQLSchema,
    readonly limits: QueryShapeLimits,
  ) {
    this.validationRules = [
      maxDepthRule({
        n: limits.maxDepth,
        exposeLimits: true,
        ignoreIntrospection: true,
        flattenFragments: true,
        // Report as a validation error (400, GRAPHQL_VALIDATION_FAILED) instead of throwing.
        propagateOnRejection: false,
        onReject: [
          (ctx, err) =>
            ctx?.reportError(new GraphQLError(err.message.replace(/^Syntax Error: /, ''))),
        ],
      }),
    ];
    this.specified = [...specifiedRules, ...this.validationRules];
  }

  /** Parses within the token limit and checks the shape; throws a coded GraphQLError. */
  document(source: string): DocumentNode {
    const hit = this.shapeChecked.get(source);
    if (hit) return hit;
    let doc: DocumentNode;
    try {
      doc = parse(source, { maxTokens: this.limits.maxTokens, noLocation: false });
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      // graphql-js says "Document contains more that N tokens" (sic).
      if (/contains more \w+ \d+ tokens/i.test(message))
        throw limitError(
          QueryLimitReason.TOO_MANY_TOKENS,
          `The document has more than ${this.limits.maxTokens} tokens`,
          this.limits.maxTokens,
        );
      throw new GraphQLError(message.replace(/^Syntax Error: /, 'Syntax Error: '), {
        extensions: { code: 'GRAPHQL_PARSE_FAILED', http: { status: 400 } },
      });
    }
    this.checkShape(doc);
    if (source.length <= 64 * 1024) this.shapeChecked.set(source, doc);
    return doc;
  }

  /** Validation errors of a shape-checked document (cached per document object). */
  validate(doc: DocumentNode): readonly GraphQLError[] {
    let errors = this.validated.get(doc);
    if (!errors) {
      errors = validate(this.schema, doc, this.specified).map(
        (e) =>
          new GraphQLError(e.message, {
            nodes: e.nodes,
            extensions: { code: 'GRAPHQL_VALIDATION_FAILED', http: { status: 400 } },
          }),
      );
      this.validated.set(doc, errors);
    }
    return errors;
  }

  /**
   * Throws when the operation is over the cost budget, a page size is invalid, or the walk
   * is too large. The cost depends only on the document, the operation and the Int
   * variables (page sizes), so it is cached on those.
   */
  assertAffordable(
    doc: DocumentNode,
    operationName: string | null | undefined,
    variables: Record<string, unknown>,
  ): void {
    const operation = pickOperation(doc, operationName);
    const key = `${operationName ?? ''}\u0000${operation ? intVariables(operation, variables) : ''}`;
    let byKey = this.costs.get(doc);
    if (!byKey) this.costs.set(doc, (byKey = new Map()));
    let cost = byKey.get(key);
    if (cost === undefined) {
      try {
        cost = getComplexity({
          schema: this.schema,
          query: doc,
          operationName: operationName ?? undefined,
          variables,
          estimators: this.estimators,
          maxQueryNodes: this.limits.maxFields * 4,
        });
      } catch (e) {
        if (e instanceof GraphQLError && e.extensions.code) throw e;
        throw limitError(
          QueryLimitReason.TOO_COMPLEX,
          `Query is too complex: ${e instanceof Error ? e.message : String(e)}`,
          this.limits.maxComplexity,
        );
      }
      if (byKey.size < 64) byKey.set(key, cost);
    }
    if (cost > this.limits.maxComplexity)
      throw limitError(
        QueryLimitReason.TOO_COMPLEX,
        `Query is too complex: cost ${cost}, limit ${this.limits.maxComplexity}`,
        this.limits.maxComplexity,
        cost,
      );
  }

  private checkShape(doc: DocumentNode): void {
    const l = this.limits;
    let aliases = 0;
    let directives = 0;
    let spreads = 0;
    visit(doc, {
      Field: (node) => {
        if (node.alias) aliases++;
      },
      Directive: () => {
        directives++;
      },
      FragmentSpread: () => {
        spreads++;
      },
    });
    if (aliases > l.maxAliases)
      throw limitError(
        QueryLimitReason.TOO_MANY_ALIASES,
        `The document has ${aliases} aliases; at most ${l.maxAliases} are allowed`,
        l.maxAliases,
        aliases,
      );
    if (directives > l.maxDirectives)
      throw limitError(
        QueryLimitReason.TOO_MANY_DIRECTIVES,
        `The document has ${directives} directives; at most ${l.maxDirectives} are allowed`,
        l.maxDirectives,
        directives,
      );
    if (spreads > l.maxFragmentSpreads)
      throw limitError(
        QueryLimitReason.TOO_MANY_FRAGMENT_SPREADS,
        `The document has ${spreads} fragment spreads; at most ${l.maxFragmentSpreads} are allowed`,
        l.maxFragmentSpreads,
        spreads,
      );
    new ExpandedShape(doc, l).check();
  }
}

/**
 * Walks each operation with fragments expanded where they are spread, counting fields and
 * the fields that share a response name in one selection set (what validation compares
 * pairwise). A fragment's figures are computed once, so a chain of fragments that doubles
 * at each step costs linear time here; counts saturate just past their limit.
 */
class ExpandedShape {
  private readonly fragments = new Map<string, FragmentDefinitionNode>();
  private readonly fragmentFields = new Map<string, number>();
  private readonly fragmentNames = new Map<string, Map<string, number>>();
  private readonly inProgress = new Set<string>();

  constructor(
    private readonly doc: DocumentNode,
    private readonly limits: QueryShapeLimits,
  ) {
    for (const d of doc.definitions)
      if (d.kind === Kind.FRAGMENT_DEFINITION) this.fragments.set(d.name.value, d);
  }

  check(): void {
    let total = 0;
    for (const d of this.doc.definitions) {
      if (d.kind === Kind.OPERATION_DEFINITION)
        total = this.cap(total + this.fields(d.selectionSet));
      else if (d.kind === Kind.FRAGMENT_DEFINITION) this.fields(d.selectionSet);
    }
    if (total > this.limits.maxFields)
      throw limitError(
        QueryLimitReason.TOO_MANY_FIELDS,
        `The operation selects more than ${this.limits.maxFields} fields (fragments expanded)`,
        this.limits.maxFields,
      );
  }

  private cap(n: number): number {
    return Math.min(n, this.limits.maxFields + 1);
  }

  /** Fields under a selection set, expanded; checks repeated response names on the way. */
  private fields(set: SelectionSetNode): number {
    const names = new Map<string, number>();
    const total = this.level(set, names);
    for (const [name, count] of names) {
      if (count > this.limits.maxSameNameFields)
        throw limitError(
          QueryLimitReason.REPEATED_FIELD,
          `\`${name}\` is selected ${count} times in one selection set; at most ${this.limits.maxSameNameFields} are allowed`,
          this.limits.maxSameNameFields,
          count,
        );
    }
    return total;
  }

  /** One level: fields of the set and of the fragments merged into it, plus their subtrees. */
  private level(set: SelectionSetNode, names: Map<string, number>): number {
    let total = 0;
    for (const s of set.selections) {
      if (s.kind === Kind.FIELD) {
        const name = (s.alias ?? s.name).value;
        names.set(name, Math.min((names.get(name) ?? 0) + 1, this.limits.maxSameNameFields + 1));
        total = this.cap(total + 1 + (s.selectionSet ? this.fields(s.selectionSet) : 0));
      } else if (s.kind === Kind.INLINE_FRAGMENT) {
        total = this.cap(total + this.level(s.selectionSet, names));
      } else {
        const f = this.fragment(s.name.value);
        if (!f) continue;
        for (const [name, count] of f.names)
          names.set(
            name,
            Math.min((names.get(name) ?? 0) + count, this.limits.maxSameNameFields + 1),
          );
        total = this.cap(total + f.fields);
      }
    }
    return total;
  }

  private fragment(name: string): { fields: number; names: Map<string, number> } | null {
    const known = this.fragmentFields.get(name);
    if (known !== undefined) return { fields: known, names: this.fragmentNames.get(name)! };
    const def = this.fragments.get(name);
    // Unknown fragments and cycles are validation's to report; they add nothing here.
    if (!def || this.inProgress.has(name)) return null;
    this.inProgress.add(name);
    const names = new Map<string, number>();
    const fields = this.level(def.selectionSet, names);
    this.inProgress.delete(name);
    this.fragmentFields.set(name, fields);
    this.fragmentNames.set(name, names);
    return { fields, names };
  }
}

function pickOperation(
  doc: DocumentNode,
  name: string | null | undefined,
): OperationDefinitionNode | undefined {
  const ops = doc.definitions.filter(
    (d): d is OperationDefinitionNode => d.kind === Kind.OPERATION_DEFINITION,
  );
  return name ? ops.find((o) => o.name?.value === name) : ops.length === 1 ? ops[0] : undefined;
}

/** The values of the operation's Int variables: all that the estimators read from variables. */
function intVariables(
  operation: OperationDefinitionNode,
  variables: Record<string, unknown>,
): string {
  let out = '';
  for (const d of operation.variableDefinitions ?? []) {
    const t = d.type.kind === Kind.NON_NULL_TYPE ? d.type.type : d.type;
    if (t.kind === Kind.NAMED_TYPE && t.name.value === 'Int')
      out += `${d.variable.name.value}=${String(variables[d.variable.name.value])};`;
  }
  return out;
}
