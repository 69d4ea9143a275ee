import { useEffect, useRef } from 'react';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

const COLORS = ['#2563eb', '#dc2626', '#16a34a', '#d97706', '#7c3aed', '#0891b2', '#db2777'];

export interface Series {
  label: string;
  values: (number | null)[];
}

/**
 * Lines over a shared x axis (epochs, versions, times). The plot is made once per set of
 * series and fed new data in place, so a curve that grows every epoch does not flicker.
 */
export function LineChart({
  x,
  series,
  xLabel,
  height = 220,
  time = false,
  integerX = false,
  testId,
}: {
  x: number[];
  series: Series[];
  xLabel: string;
  height?: number;
  time?: boolean;
  /** Whole-number x values (versions, epochs): ticks only on integers. */
  integerX?: boolean;
  testId?: string;
}) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const shape = series.map((s) => s.label).join('\u0000');

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const p = new uPlot(
      {
        width: Math.max(320, el.clientWidth),
        height,
        scales: {
          x: {
            time,
            // One point alone still gets an axis around it.
            range: (_u, min, max) => (min === max ? [min - 1, max + 1] : [min, max]),
          },
        },
        axes: [{ label: xLabel, incrs: integerX ? [1, 2, 5, 10, 20, 50, 100] : undefined }, {}],
        series: [
          { label: xLabel },
          ...series.map((s, i) => ({
            label: s.label,
            stroke: COLORS[i % COLORS.length],
            width: 2,
            points: { show: true, size: 5 },
          })),
        ],
      },
      [x, ...series.map((s) => s.values)] as uPlot.AlignedData,
      el,
    );
    plot.current = p;
    const resize = new ResizeObserver(() =>
      p.setSize({ width: Math.max(320, el.clientWidth), height }),
    );
    resize.observe(el);
    return () => {
      resize.disconnect();
      p.destroy();
      plot.current = null;
    };
    // The plot is rebuilt only when the set of series changes; data flows in below.
  }, [shape, height, time, xLabel, integerX]);

  useEffect(() => {
    plot.current?.setData([x, ...series.map((s) => s.values)] as uPlot.AlignedData);
  }, [x, series]);

  return <div ref={box} className="chart" data-testid={testId} data-points={x.length} />;
}

/** Reference and current counts over the same bins, side by side, as shares. */
export function Histogram({
  labels,
  reference,
  current,
  testId,
}: {
  labels: string[];
  reference: number[];
  current: number[];
  testId?: string;
}) {
  const rs = reference.reduce((a, b) => a + b, 0) || 1;
  const cs = current.reduce((a, b) => a + b, 0) || 1;
  const shares = labels.map((_, i) => [reference[i] / rs, current[i] / cs]);
  const top = Math.max(0.01, ...shares.flat());
  const W = 360;
  const H = 140;
  const bw = W / Math.max(1, labels.length);
  return (
    <svg
      className="histogram"
      viewBox={`0 0 ${W} ${H + 16}`}
      width="100%"
      data-testid={testId}
      role="img"
    >
      {shares.map(([r, c], i) => (
        <g key={i}>
          <rect
            x={i * bw + 2}
            y={H - (r / top) * H}
            width={bw / 2 - 2}
            height={(r / top) * H}
            fill="#94a3b8"
          >
            <title>{`reference ${labels[i]}: ${(r * 100).toFixed(1)} %`}</title>
          </rect>
          <rect
            x={i * bw + bw / 2}
            y={H - (c / top) * H}
            width={bw / 2 - 2}
            height={(c / top) * H}
            fill="#2563eb"
          >
            <title>{`current ${labels[i]}: ${(c * 100).toFixed(1)} %`}</title>
          </rect>
        </g>
      ))}
      <line x1={0} x2={W} y1={H} y2={H} stroke="#64748b" />
      <text x={0} y={H + 13} fontSize={10} fill="#475569">
        {labels[0]}
      </text>
      <text x={W} y={H + 13} fontSize={10} fill="#475569" textAnchor="end">
        {labels[labels.length - 1]}
      </text>
    </svg>
  );
}
