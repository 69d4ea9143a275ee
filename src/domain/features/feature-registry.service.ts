import { type Clock } from '../shared/clock';
import { ConflictError, InvalidInputError, NotFoundError } from '../shared/domain-error';
import { type Page, type PageRequest } from '../shared/pagination';
import {
  AggregationFn,
  ALL_FEATURES,
  type FeatureRef,
  FeatureType,
  type FeatureViewMetadata,
  type FeatureViewSchema,
  type FeatureViewVersion,
  outputType,
  formatFeatureRef,
  parseFeatureRef,
  schemaFingerprint,
} from './feature-definition';
import { FeatureErrorCode } from './feature-errors';
import {
  type FeatureEntity,
  type FeatureRegistryRepository,
  type FeatureView,
  type VersionConsumer,
} from './feature-store.ports';
import { validateTransform } from './transforms';

const NAME_RE = /^[a-z][a-z0-9_]{0,62}$/;
/**
 * Live versions per view, and resolved ref lists (serving clients send the same list on
 * every call), are cached this long for the online read path. Changes made by this process
 * invalidate both at once; changes by other processes are seen within it.
 */
const RESOLUTION_TTL_MS = 1_000;
const RESOLVED_CACHE_MAX = 1_000;
const MAX_FEATURES = 2_000;
/** Features one read, dataset or join may name, `*` expanded: a few views' worth. */
export const MAX_RESOLVED_FEATURES = 10_000;
/** A resolution is cached only under a key this short: a huge list is not kept around. */
const MAX_CACHED_KEY = 64 * 1024;

export interface ResolvedRef {
  ref: string;
  version: FeatureViewVersion;
  feature: string;
  /** Index of the feature in `version.schema.features` (and in `evaluateView` values). */
  position: number;
  type: FeatureType;
}

/** Feature registry: entities, views and their immutable versions. */
export class FeatureRegistryService {
  private readonly liveCache = new Map<
    string,
    { at: number; versions: Promise<FeatureViewVersion[]> }
  >();
  private readonly resolvedCache = new Map<string, { at: number; refs: Promise<ResolvedRef[]> }>();
  /**
   * The cache key of each frozen ref list seen (a model version's inputs): joining and
   * hashing a 500-feature list costs tens of µs a request, looking up the same string once
   * built costs nothing. Only frozen lists: a list that can change cannot stand for its key.
   */
  private readonly keyOf = new WeakMap<readonly string[], string>();

  constructor(
    private readonly repo: FeatureRegistryRepository,
    private readonly clock: Clock,
  ) {}

  async createEntity(input: {
    name: string;
    joinKeys: string[];
    description?: string;
  }): Promise<FeatureEntity> {
    checkName(input.name, 'entity name');
    if (
      input.joinKeys.length === 0 ||
      input.joinKeys.length > 8 ||
      !input.joinKeys.every((k) => NAME_RE.test(k))
    ) {
      throw invalid('joinKeys must be 1-8 lower-case identifiers');
    }
    const e = await this.repo.createEntity({
      name: input.name,
      joinKeys: input.joinKeys,
      description: input.description ?? '',
    });
    if (!e)
      throw new ConflictError(
        FeatureErrorCode.ENTITY_EXISTS,
        `Entity "${input.name}" already exists`,
      );
    return e;
  }

  entitiesByIds(ids: readonly string[]): Promise<FeatureEntity[]> {
    return this.repo.findEntitiesByIds(ids);
  }

  listEntities(page: PageRequest): Promise<Page<FeatureEntity>> {
    return this.repo.listEntities(page);
  }

  async createView(
    input: { name: string } & FeatureViewSchema & Partial<FeatureViewMetadata>,
  ): Promise<{ view: FeatureView; version: FeatureViewVersion }> {
    checkName(input.name, 'view name');
    const schema = normaliseSchema(input);
    if (!(await this.repo.findEntity(schema.entity))) {
      throw new NotFoundError(
        FeatureErrorCode.ENTITY_NOT_FOUND,
        `Entity "${schema.entity}" does not exist`,
      );
    }
    const created = await this.repo.createView(
      {
        name: input.name,
        entity: schema.entity,
        description: input.description ?? '',
        owner: input.owner ?? '',
        tags: input.tags ?? [],
      },
      schema,
      schemaFingerprint(schema),
    );
    if (!created)
      throw new ConflictError(
        FeatureErrorCode.VIEW_EXISTS,
        `Feature view "${input.name}" already exists`,
      );
    this.invalidate(input.name);
    return created;
  }

  /**
   * Metadata edits change the view in place. A schema whose fingerprint differs from the
   * latest version's creates a new immutable version; the old one stays live.
   */
  async updateView(
    name: string,
    input: { schema?: Omit<FeatureViewSchema, 'entity'>; metadata?: Partial<FeatureViewMetadata> },
  ): Promise<{ view: FeatureView; version: FeatureViewVersion; newVersion: boolean }> {
    let view = await this.view(name);
    if (input.metadata) {
      view = await this.repo.updateMetadata(
        view.id,
        {
          description: input.metadata.description ?? view.description,
          owner: input.metadata.owner ?? view.owner,
          tags: input.metadata.tags ?? view.tags,
        },
        this.clock.now(),
      );
    }
    const versions = await this.repo.versionsOf([view.id]);
    const latest = versions.reduce((a, b) => (b.version > a.version ? b : a));
    if (!input.schema) return { view, version: latest, newVersion: false };
    const schema = normaliseSchema({ ...input.schema, entity: view.entity });
    const fingerprint = schemaFingerprint(schema);
    if (fingerprint === latest.fingerprint) return { view, version: latest, newVersion: false };
    const added = await this.repo.addVersion(view.id, schema, fingerprint);
    this.invalidate(name);
    return { view, version: added, newVersion: true };
  }

  async view(name: string): Promise<FeatureView> {
    const v = await this.repo.findView(name);
    if (!v)
      throw new NotFoundError(
        FeatureErrorCode.VIEW_NOT_FOUND,
        `Feature view "${name}" does not exist`,
      );
    return v;
  }

  findView(name: string): Promise<FeatureView | null> {
    return this.repo.findView(name);
  }

  listViews(page: PageRequest): Promise<Page<FeatureView>> {
    return this.repo.listViews(page);
  }

  viewsByIds(ids: readonly string[]): Promise<FeatureView[]> {
    return this.repo.findViewsByIds(ids);
  }

  versionsOf(viewIds: readonly string[]): Promise<FeatureViewVersion[]> {
    return this.repo.versionsOf(viewIds);
  }

  versionsByIds(ids: readonly string[]): Promise<FeatureViewVersion[]> {
    return this.repo.versionsByIds(ids);
  }

  consumersOf(versionIds: readonly string[]): Promise<Map<string, VersionConsumer[]>> {
    return this.repo.consumersOf(versionIds);
  }

  /** Live versions of a view (what ingestion materializes), oldest first. */
  liveVersions(name: string): Promise<FeatureViewVersion[]> {
    const now = Date.now();
    const hit = this.liveCache.get(name);
    if (hit && now - hit.at < RESOLUTION_TTL_MS) return hit.versions;
    const versions = this.loadLiveVersions(name);
    this.liveCache.set(name, { at: now, versions });
    versions.catch(() => this.liveCache.delete(name));
    return versions;
  }

  private async loadLiveVersions(name: string): Promise<FeatureViewVersion[]> {
    const view = await this.view(name);
    return (await this.repo.versionsOf([view.id]))
      .filter((v) => !v.retiredAt)
      .sort((a, b) => a.version - b.version);
  }

  liveVersionsBySource(source: string): Promise<FeatureViewVersion[]> {
    return this.repo.liveVersionsBySource(source);
  }

  allSources(): Promise<string[]> {
    return this.repo.allSources();
  }

  /** Stops materializing a version. Refused while anything still consumes it. */
  async retireVersion(name: string, version: number): Promise<FeatureViewVersion> {
    const v = (await this.liveVersions(name)).find((x) => x.version === version);
    if (!v)
      throw new NotFoundError(
        FeatureErrorCode.VERSION_NOT_FOUND,
        `No live version ${version} of "${name}"`,
      );
    const consumers = (await this.repo.consumersOf([v.id])).get(v.id) ?? [];
    if (consumers.length) {
      throw new ConflictError(
        FeatureErrorCode.VERSION_IN_USE,
        `${name}@${version} still has ${consumers.length} consumer(s)`,
        {
          consumers: consumers.map((c) => `${c.kind}:${c.name}`),
        },
      );
    }
    await this.repo.retireVersion(v.id, this.clock.now());
    this.invalidate(name);
    return { ...v, retiredAt: this.clock.now() };
  }

  async deleteView(name: string): Promise<FeatureView> {
    const view = await this.view(name);
    const versions = await this.repo.versionsOf([view.id]);
    const consumers = await this.repo.consumersOf(versions.map((v) => v.id));
    const all = [...consumers.values()].flat();
    if (all.length) {
      throw new ConflictError(
        FeatureErrorCode.VERSION_IN_USE,
        `"${name}" still has ${all.length} consumer(s)`,
        {
          consumers: all.map((c) => `${c.kind}:${c.name}`),
        },
      );
    }
    await this.repo.deleteView(view.id, this.clock.now());
    this.invalidate(name);
    return view;
  }

  /** Resolves refs like `airport_delays@2:mean_delay_6h` (no @version: the latest live version). */
  resolveRefs(refs: readonly string[]): Promise<ResolvedRef[]> {
    let key = this.keyOf.get(refs);
    if (key === undefined) {
      key = refs.join('\n');
      if (Object.isFrozen(refs)) this.keyOf.set(refs, key);
    }
    const now = Date.now();
    const hit = this.resolvedCache.get(key);
    if (hit && now - hit.at < RESOLUTION_TTL_MS) return hit.refs;
    if (key.length > MAX_CACHED_KEY) return this.resolveUncached(refs);
    if (this.resolvedCache.size >= RESOLVED_CACHE_MAX) this.resolvedCache.clear();
    const resolved = this.resolveUncached(refs);
    this.resolvedCache.set(key, { at: now, refs: resolved });
    resolved.catch(() => this.resolvedCache.delete(key));
    return resolved;
  }

  /** A view changed here: forget its live versions and every resolution that may use them. */
  private invalidate(name: string): void {
    this.liveCache.delete(name);
    this.resolvedCache.clear();
  }

  private async resolveUncached(refs: readonly string[]): Promise<ResolvedRef[]> {
    const tooMany = () =>
      new InvalidInputError(
        FeatureErrorCode.TOO_MANY_FEATURES,
        `At most ${MAX_RESOLVED_FEATURES} features at once (with view:* expanded)`,
        { max: MAX_RESOLVED_FEATURES },
      );
    if (refs.length > MAX_RESOLVED_FEATURES) throw tooMany();
    const parsed = refs.map((r) => {
      const p = parseFeatureRef(r);
      if (!p)
        throw new InvalidInputError(
          FeatureErrorCode.INVALID_FEATURE_REF,
          `"${r}" is not a feature ref like view@2:feature (or view@2:* for all its features)`,
          { ref: r },
        );
      return { raw: r, p };
    });
    const byView = new Map<string, FeatureViewVersion[]>();
    for (const name of new Set(parsed.map((x) => x.p.view)))
      byView.set(name, await this.liveVersions(name));
    const resolved = parsed.flatMap(({ raw, p }) => resolveOne(raw, p, byView.get(p.view) ?? []));
    if (resolved.length > MAX_RESOLVED_FEATURES) throw tooMany();
    return resolved;
  }
}

/** Feature positions of a version by name; versions are immutable, so the index never goes stale. */
const featureIndex = new WeakMap<FeatureViewVersion, Map<string, number>>();

function positionOf(version: FeatureViewVersion, name: string): number | undefined {
  let index = featureIndex.get(version);
  if (!index) {
    index = new Map(version.schema.features.map((f, i) => [f.name, i]));
    featureIndex.set(version, index);
  }
  return index.get(name);
}

function resolveOne(raw: string, p: FeatureRef, versions: FeatureViewVersion[]): ResolvedRef[] {
  const version =
    p.version === null
      ? versions[versions.length - 1]
      : versions.find((v) => v.version === p.version);
  if (!version) {
    throw new NotFoundError(
      FeatureErrorCode.VERSION_NOT_FOUND,
      `No live version ${p.version ?? ''} of view "${p.view}"`,
      {
        ref: raw,
      },
    );
  }
  if (p.feature === ALL_FEATURES)
    return version.schema.features.map((_f, i) => resolvedAt(p.view, version, i));
  const position = positionOf(version, p.feature);
  if (position === undefined) {
    throw new NotFoundError(
      FeatureErrorCode.FEATURE_NOT_FOUND,
      `${p.view}@${version.version} has no feature "${p.feature}"`,
      {
        ref: raw,
      },
    );
  }
  return [resolvedAt(p.view, version, position)];
}

function resolvedAt(view: string, version: FeatureViewVersion, position: number): ResolvedRef {
  const feature = version.schema.features[position];
  return {
    ref: formatFeatureRef({ view, version: version.version, feature: feature.name }),
    version,
    feature: feature.name,
    position,
    type: outputType(feature),
  };
}

function invalid(message: string, details?: Record<string, unknown>): InvalidInputError {
  return new InvalidInputError(FeatureErrorCode.INVALID_FEATURE_DEFINITION, message, details);
}

function checkName(name: string, what: string): void {
  if (!NAME_RE.test(name))
    throw invalid(
      `${what} must be a lower-case identifier of at most 63 characters (got "${name}")`,
    );
}

/** Validates a schema and returns it with defaults filled in, so equal meaning hashes equal. */
export function normaliseSchema(s: FeatureViewSchema): FeatureViewSchema {
  checkName(s.entity, 'entity');
  if (!/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$/.test(s.source))
    throw invalid(
      `source must be 1-100 characters of letters, digits and _ . : - (got "${s.source}")`,
    );
  if (!Number.isInteger(s.ttlSeconds) || s.ttlSeconds <= 0)
    throw invalid('ttlSeconds must be a positive integer');
  if (!Number.isInteger(s.allowedLatenessSeconds) || s.allowedLatenessSeconds < 0)
    throw invalid('allowedLatenessSeconds must be a non-negative integer');
  if (s.features.length === 0 || s.features.length > MAX_FEATURES)
    throw invalid(`a view needs 1 to ${MAX_FEATURES} features`);
  const names = new Set<string>();
  const features = s.features.map((f) => {
    checkName(f.name, 'feature name');
    if (names.has(f.name)) throw invalid(`duplicate feature "${f.name}"`, { feature: f.name });
    names.add(f.name);
    if (!f.source || f.source.length > 100)
      throw invalid(`feature "${f.name}" needs a source field`, { feature: f.name });
    const transform = f.transform ?? { kind: 'IDENTITY' };
    const tErr = validateTransform(transform);
    if (tErr) throw invalid(`feature "${f.name}": ${tErr}`, { feature: f.name });
    const numeric = f.type === FeatureType.INT || f.type === FeatureType.FLOAT;
    if (transform.kind === 'BIN' && !numeric)
      throw invalid(`feature "${f.name}": BIN needs an INT or FLOAT source`, { feature: f.name });
    const agg = f.aggregation ?? null;
    if (agg) {
      if (!Number.isInteger(agg.windowSeconds) || agg.windowSeconds <= 0)
        throw invalid(`feature "${f.name}": windowSeconds must be a positive integer`, {
          feature: f.name,
        });
      const numOut = transform.kind !== 'IDENTITY' || numeric;
      if (
        [AggregationFn.SUM, AggregationFn.MEAN, AggregationFn.MIN, AggregationFn.MAX].includes(
          agg.fn,
        ) &&
        !numOut
      ) {
        throw invalid(`feature "${f.name}": ${agg.fn} needs a numeric value`, { feature: f.name });
      }
    }
    const v = f.validation ?? {};
    if (v.maxNullFraction != null && !(v.maxNullFraction >= 0 && v.maxNullFraction <= 1))
      throw invalid(`feature "${f.name}": maxNullFraction must be between 0 and 1`, {
        feature: f.name,
      });
    if (v.min != null && v.max != null && v.min > v.max)
      throw invalid(`feature "${f.name}": min is greater than max`, { feature: f.name });
    return {
      name: f.name,
      type: f.type,
      source: f.source,
      transform,
      aggregation: agg ? { fn: agg.fn, windowSeconds: agg.windowSeconds } : null,
      validation: {
        min: v.min ?? null,
        max: v.max ?? null,
        allowedValues: v.allowedValues?.length ? [...v.allowedValues] : null,
        maxNullFraction: v.maxNullFraction ?? null,
      },
    };
  });
  // A source field is stored once per event, in one column whose type the features reading it
  // decide (offline segments, the SQL join's history columns): two types would make one of
  // them read the other's encoding (a BOOL as 1/0, a FLOAT cast to an integer).
  const sourceTypes = new Map<string, FeatureType>();
  for (const f of features) {
    const seen = sourceTypes.get(f.source);
    if (seen !== undefined && seen !== f.type)
      throw invalid(
        `feature "${f.name}" reads source field "${f.source}" as ${f.type}, another feature as ${seen}: one source field has one type`,
        { feature: f.name, source: f.source },
      );
    sourceTypes.set(f.source, f.type);
  }
  return {
    entity: s.entity,
    source: s.source,
    ttlSeconds: s.ttlSeconds,
    allowedLatenessSeconds: s.allowedLatenessSeconds,
    features,
  };
}
