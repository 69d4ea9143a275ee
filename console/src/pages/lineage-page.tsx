import { Graph, layout } from '@dagrejs/dagre';
import {
  Background,
  Controls,
  MarkerType,
  Position,
  ReactFlow,
  type Edge,
  type Node,
  type NodeProps,
} from '@xyflow/react';
import '@xyflow/react/dist/style.css';
import { useEffect, useMemo, useState } from 'react';
import { useQuery } from 'urql';
import {
  LineageGraphDocument,
  LineageSearchDocument,
  NodeDetailsDocument,
  type LineageDirection,
  type LineageGraphQuery,
} from '../generated/graphql';
import { navigate, useLocation, withParams } from '../router';
import { Card, ErrorNote, num, pct, StateBadge, when } from '../ui';

const KINDS = [
  'Source',
  'FeatureViewVersion',
  'DatasetSnapshot',
  'Run',
  'Study',
  'Trial',
  'ModelVersion',
  'Deployment',
  'DriftReport',
  'PerformanceReport',
  'Alert',
  'Retraining',
];

type Lineage = LineageGraphQuery['lineage'];
type FlowNode = Node<{ kind: string; label: string; mark: 'root' | 'impacted' | 'selected' | '' }>;

const NODE_W = 190;
const NODE_H = 46;
const HANDLES = [
  { type: 'target' as const, position: Position.Left, x: 0, y: NODE_H / 2, width: 1, height: 1 },
  {
    type: 'source' as const,
    position: Position.Right,
    x: NODE_W,
    y: NODE_H / 2,
    width: 1,
    height: 1,
  },
];

/** Above this many nodes dagre's crossing minimization takes seconds; layers are enough. */
const DAGRE_MAX_NODES = 300;

type Positions = Map<string, { x: number; y: number }>;

/** dagre: network-simplex ranks and crossing minimization, for graphs people read. */
function dagrePositions(g: Lineage): Positions {
  const d = new Graph();
  d.setGraph({ rankdir: 'LR', nodesep: 14, ranksep: 70 });
  d.setDefaultEdgeLabel(() => ({}));
  for (const n of g.nodes) d.setNode(n.id, { width: NODE_W, height: NODE_H });
  for (const e of g.edges) d.setEdge(e.from, e.to);
  layout(d);
  return new Map(
    g.nodes.map((n) => {
      const p = d.node(n.id);
      return [n.id, { x: p.x - NODE_W / 2, y: p.y - NODE_H / 2 }];
    }),
  );
}

/**
 * Layers in linear time for large graphs (impact graphs of hundreds of nodes): a node's
 * layer is its longest path from a source, and each layer is ordered by the mean position of
 * its parents, which leaves a tree without crossings. Layers are centred on one another.
 */
function layeredPositions(g: Lineage): Positions {
  const preds = new Map<string, string[]>(g.nodes.map((n) => [n.id, []]));
  const succs = new Map<string, string[]>(g.nodes.map((n) => [n.id, []]));
  for (const e of g.edges) {
    preds.get(e.to)?.push(e.from);
    succs.get(e.from)?.push(e.to);
  }
  const rank = new Map<string, number>();
  const waiting = new Map(g.nodes.map((n) => [n.id, preds.get(n.id)?.length ?? 0]));
  const queue = g.nodes.filter((n) => waiting.get(n.id) === 0).map((n) => n.id);
  for (const id of queue) rank.set(id, 0);
  for (let i = 0; i < queue.length; i++) {
    const v = queue[i];
    for (const w of succs.get(v) ?? []) {
      rank.set(w, Math.max(rank.get(w) ?? 0, (rank.get(v) ?? 0) + 1));
      const left = (waiting.get(w) ?? 1) - 1;
      waiting.set(w, left);
      if (left === 0) queue.push(w);
    }
  }
  const layers: string[][] = [];
  for (const n of g.nodes) (layers[rank.get(n.id) ?? 0] ??= []).push(n.id);
  const position = new Map<string, number>();
  for (const layer of layers) {
    if (!layer) continue;
    const key = (id: string) => {
      const ps = (preds.get(id) ?? []).map((p) => position.get(p)).filter((x) => x !== undefined);
      return ps.length ? ps.reduce((a, b) => a + b, 0) / ps.length : -1;
    };
    const keys = new Map(layer.map((id) => [id, key(id)]));
    layer.sort((a, b) => (keys.get(a) ?? 0) - (keys.get(b) ?? 0));
    layer.forEach((id, i) => position.set(id, i));
  }
  const out: Positions = new Map();
  layers.forEach((layer, r) =>
    layer?.forEach((id, i) =>
      out.set(id, { x: r * (NODE_W + 70), y: (i - (layer.length - 1) / 2) * (NODE_H + 14) }),
    ),
  );
  return out;
}

/** Left to right: upstream on the left, downstream on the right. */
function layoutGraph(
  g: Lineage,
  root: string,
  impacted: Set<string> | null,
  selected: string,
): {
  nodes: FlowNode[];
  edges: Edge[];
} {
  const positions = g.nodes.length > DAGRE_MAX_NODES ? layeredPositions(g) : dagrePositions(g);
  const nodes: FlowNode[] = g.nodes.map((n) => {
    const p = positions.get(n.id) ?? { x: 0, y: 0 };
    const mark =
      n.id === root
        ? 'root'
        : n.id === selected
          ? 'selected'
          : impacted?.has(n.id)
            ? 'impacted'
            : '';
    return {
      id: n.id,
      type: 'lineage',
      position: p,
      data: { kind: n.kind, label: n.label, mark },
      draggable: false,
      connectable: false,
      // Sizes and handles known up front: nodes and edges are drawn at once instead of after
      // every node has been measured in the page (seconds for a thousand of them).
      width: NODE_W,
      height: NODE_H,
      handles: HANDLES,
    };
  });
  const edges: Edge[] = g.edges.map((e) => ({
    id: `${e.from}>${e.to}`,
    source: e.from,
    target: e.to,
    label: g.edges.length <= 60 ? e.relation : undefined,
    markerEnd: { type: MarkerType.ArrowClosed },
    className: impacted?.has(e.to) ? 'impacted' : '',
  }));
  return { nodes, edges };
}

/** No <Handle> elements: edges attach to the handles each node declares (HANDLES). */
function LineageNodeView({ data }: NodeProps<FlowNode>) {
  return (
    <div className={`lnode k-${data.kind} ${data.mark}`} title={`${data.kind}: ${data.label}`}>
      <div className="lkind">{data.kind}</div>
      <div className="llabel">{data.label}</div>
    </div>
  );
}

const nodeTypes = { lineage: LineageNodeView };

export default function LineagePage() {
  const { params } = useLocation();
  const start = params.get('node');
  const impact = params.get('impact');
  const direction = (params.get('dir') ?? 'BOTH') as LineageDirection;
  const depth = Number(params.get('depth') ?? 3);
  const selected = params.get('sel') ?? impact ?? start;
  const root = impact ?? start;

  return (
    <div className="lineage">
      <aside>
        <Search />
        {selected && <Details id={selected} start={root} />}
      </aside>
      <div className="lineage-main">
        {root ? (
          <GraphView
            root={root}
            impact={Boolean(impact)}
            direction={impact ? 'DOWNSTREAM' : direction}
            depth={impact ? 12 : depth}
            selected={selected ?? root}
          />
        ) : (
          <p className="muted">
            Search for a source, feature view version, dataset, run, model version, deployment,
            alert or retraining to draw its lineage.
          </p>
        )}
      </div>
    </div>
  );
}

function Search() {
  const [text, setText] = useState('');
  const [kind, setKind] = useState('');
  const [query, setQuery] = useState('');
  // Ask once typing pauses, not on every key.
  useEffect(() => {
    const t = setTimeout(() => setQuery(text), 200);
    return () => clearTimeout(t);
  }, [text]);
  const [{ data, error }] = useQuery({
    query: LineageSearchDocument,
    variables: { query, kinds: kind ? [kind] : null, first: 30 },
  });
  return (
    <Card title="Find a node">
      <div className="row">
        <input
          name="lineageSearch"
          placeholder="airport_delays@1, flight-delay, run id…"
          value={text}
          onChange={(e) => setText(e.target.value)}
        />
        <select name="kind" value={kind} onChange={(e) => setKind(e.target.value)}>
          <option value="">any kind</option>
          {KINDS.map((k) => (
            <option key={k}>{k}</option>
          ))}
        </select>
      </div>
      <ErrorNote error={error} />
      <ul className="results" data-testid="search-results">
        {data?.lineageSearch.map((n) => (
          <li key={n.id}>
            <a
              href={`/lineage?node=${encodeURIComponent(n.id)}`}
              onClick={(e) => {
                e.preventDefault();
                navigate(`/lineage?node=${encodeURIComponent(n.id)}`);
              }}
            >
              <span className={`dot k-${n.kind}`} /> {n.label}{' '}
              <span className="muted">{n.kind}</span>
            </a>
          </li>
        ))}
      </ul>
    </Card>
  );
}

function GraphView({
  root,
  impact,
  direction,
  depth,
  selected,
}: {
  root: string;
  impact: boolean;
  direction: LineageDirection;
  depth: number;
  selected: string;
}) {
  const [{ data, error, fetching }] = useQuery({
    query: LineageGraphDocument,
    variables: { id: root, direction, depth, limit: 5000 },
  });
  const g = data?.lineage;
  const impacted = useMemo(
    () => (impact && g ? new Set(g.nodes.filter((n) => n.id !== root).map((n) => n.id)) : null),
    [impact, g, root],
  );
  const flow = useMemo(
    () => (g ? layoutGraph(g, root, impacted, selected) : null),
    [g, root, impacted, selected],
  );
  const rootLabel = g?.nodes.find((n) => n.id === root)?.label ?? '';
  return (
    <>
      <div className="toolbar">
        {impact ? (
          <strong data-testid="impact-summary">
            {impacted ? `${impacted.size} objects depend on ${rootLabel}` : 'Impact…'}
          </strong>
        ) : (
          <>
            <label>
              Direction{' '}
              <select
                value={direction}
                onChange={(e) => navigate(withParams({ dir: e.target.value }), true)}
              >
                <option>BOTH</option>
                <option>UPSTREAM</option>
                <option>DOWNSTREAM</option>
              </select>
            </label>
            <label>
              Depth{' '}
              <select
                value={depth}
                onChange={(e) => navigate(withParams({ depth: e.target.value }), true)}
              >
                {[1, 2, 3, 4, 6, 8, 12].map((d) => (
                  <option key={d}>{d}</option>
                ))}
              </select>
            </label>
          </>
        )}
        <span className="muted">{g ? `${g.nodes.length} nodes, ${g.edges.length} edges` : ''}</span>
        {fetching && <span className="muted">loading…</span>}
      </div>
      <ErrorNote error={error} />
      {flow && (
        <div
          className="flow"
          data-testid="lineage-graph"
          data-nodes={flow.nodes.length}
          data-root={root}
        >
          <ReactFlow
            nodes={flow.nodes}
            edges={flow.edges}
            nodeTypes={nodeTypes}
            fitView
            fitViewOptions={{ padding: 0.1 }}
            minZoom={0.02}
            nodesDraggable={false}
            nodesConnectable={false}
            onNodeClick={(_, n) => navigate(withParams({ sel: n.id }))}
            proOptions={{ hideAttribution: true }}
          >
            <Background />
            <Controls showInteractive={false} />
          </ReactFlow>
        </div>
      )}
    </>
  );
}

function Details({ id, start }: { id: string; start: string | null }) {
  const [{ data, error }] = useQuery({ query: NodeDetailsDocument, variables: { id } });
  const n = data?.node;
  return (
    <Card title="Details">
      <ErrorNote error={error} />
      <div data-testid="node-details">
        {!n && data && <p className="muted">Not fetchable (a source is a name only).</p>}
        {n?.__typename === 'ModelVersion' && (
          <dl>
            <dt>Model version</dt>
            <dd>
              {n.model}@{n.version} <StateBadge state={n.state} />
            </dd>
            <dt>Metrics</dt>
            <dd>
              {Object.entries(n.metrics)
                .map(([k, v]) => `${k} ${num(v)}`)
                .join(', ')}
            </dd>
            <dt>Snapshot hash</dt>
            <dd className="mono">{n.datasetHash?.slice(0, 16) ?? '—'}</dd>
            <dt>Git commit</dt>
            <dd className="mono">{n.gitCommit ?? '—'}</dd>
          </dl>
        )}
        {n?.__typename === 'FeatureViewVersion' && (
          <dl>
            <dt>Feature view version</dt>
            <dd>{n.ref}</dd>
            <dt>Entity / source</dt>
            <dd>
              {n.entity} / {n.source}
            </dd>
            <dt>Features</dt>
            <dd>{n.features.map((f) => `${f.name}: ${f.type}`).join(', ')}</dd>
            <dt>Consumers</dt>
            <dd>{n.consumers.map((c) => `${c.kind} ${c.name}`).join(', ') || 'none'}</dd>
          </dl>
        )}
        {n?.__typename === 'DatasetSnapshot' && (
          <dl>
            <dt>Dataset</dt>
            <dd>
              {n.name} <StateBadge state={n.datasetStatus} />
            </dd>
            <dt>Rows</dt>
            <dd>{n.rowCount}</dd>
            <dt>Content hash</dt>
            <dd className="mono">{n.contentHash?.slice(0, 16) ?? '—'}</dd>
            <dt>Features</dt>
            <dd>{n.featureRefs.join(', ')}</dd>
          </dl>
        )}
        {n?.__typename === 'Run' && (
          <dl>
            <dt>Run</dt>
            <dd>
              {n.experiment} / {n.trainer.name} <StateBadge state={n.runStatus} />
            </dd>
            <dt>Metrics</dt>
            <dd>
              {Object.entries(n.metrics)
                .map(([k, v]) => `${k} ${num(v)}`)
                .join(', ')}
            </dd>
            <dt>Created</dt>
            <dd>{when(n.createdAt)}</dd>
          </dl>
        )}
        {n?.__typename === 'Deployment' && (
          <dl>
            <dt>Deployment</dt>
            <dd>{n.endpoint}</dd>
            <dt>Model</dt>
            <dd>{n.served?.name ?? '—'}</dd>
            <dt>Canary share</dt>
            <dd>{pct(n.canaryShare)}</dd>
          </dl>
        )}
        {n?.__typename === 'Alert' && (
          <dl>
            <dt>Alert</dt>
            <dd>
              {n.alertKind} <StateBadge state={n.alertStatus} />
            </dd>
            <dd>{n.summary}</dd>
          </dl>
        )}
        {n?.__typename === 'MonitorReport' && (
          <dl>
            <dt>{n.reportKind} report</dt>
            <dd>{n.summary}</dd>
            <dt>Window</dt>
            <dd>
              {when(n.windowStart)} – {when(n.windowEnd)}
            </dd>
          </dl>
        )}
        <div className="actions">
          {id !== start && (
            <button onClick={() => navigate(`/lineage?node=${encodeURIComponent(id)}`)}>
              Walk from here
            </button>
          )}
          <button onClick={() => navigate(`/lineage?impact=${encodeURIComponent(id)}`)}>
            What depends on this?
          </button>
        </div>
      </div>
    </Card>
  );
}
