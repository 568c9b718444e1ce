/**
 * A time chart (uPlot): one line per series over the samples' times, values formatted as bytes
 * or rates, and optional markers (snapshots) drawn as labelled vertical lines. Built once per
 * mount; new data is handed to the same chart, so a live page does not rebuild its canvas.
 */
import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";
import { html } from "./html.js";

export interface ChartSeries {
  label: string;
  color: string;
  values: Array<number | null>;
}

export interface ChartMarker {
  /** Seconds since the epoch. */
  t: number;
  label: string;
}

interface TimeChartProps {
  title: string;
  times: number[];
  series: ChartSeries[];
  format: (value: number) => string;
  markers?: ChartMarker[];
  height?: number;
}

export function TimeChart({ title, times, series, format, markers = [], height = 180 }: TimeChartProps) {
  const box = useRef<HTMLDivElement>(null);
  const chart = useRef<uPlot | null>(null);
  const markersRef = useRef<ChartMarker[]>(markers);
  markersRef.current = markers;
  const data: uPlot.AlignedData = [times, ...series.map((one) => one.values)];

  useEffect(() => {
    const element = box.current;
    if (element === null) return;
    const drawMarkers = (plot: uPlot): void => {
      const { ctx, bbox } = plot;
      ctx.save();
      ctx.strokeStyle = "#7c3aed";
      ctx.fillStyle = "#7c3aed";
      ctx.lineWidth = 1 * devicePixelRatio;
      ctx.font = `${11 * devicePixelRatio}px system-ui, sans-serif`;
      // Every marker gets its line; a label only where it does not run into the previous one.
      let labelEnd = -Infinity;
      for (const marker of markersRef.current) {
        const x = Math.round(plot.valToPos(marker.t, "x", true));
        if (x < bbox.left || x > bbox.left + bbox.width) continue;
        ctx.beginPath();
        ctx.setLineDash([4 * devicePixelRatio, 3 * devicePixelRatio]);
        ctx.moveTo(x, bbox.top);
        ctx.lineTo(x, bbox.top + bbox.height);
        ctx.stroke();
        const textX = x + 3 * devicePixelRatio;
        const width = ctx.measureText(marker.label).width;
        if (textX < labelEnd || textX + width > bbox.left + bbox.width) continue;
        ctx.fillText(marker.label, textX, bbox.top + 12 * devicePixelRatio);
        labelEnd = textX + width + 6 * devicePixelRatio;
      }
      ctx.restore();
    };
    const options: uPlot.Options = {
      width: Math.max(200, element.clientWidth),
      height,
      series: [
        {},
        ...series.map((one) => ({
          label: one.label,
          stroke: one.color,
          width: 2,
          value: (_u: uPlot, v: number | null) => (v === null ? "–" : format(v)),
        })),
      ],
      axes: [{}, { values: (_u: uPlot, ticks: number[]) => ticks.map(format), size: 80 }],
      scales: { y: { range: (_u: uPlot, min: number, max: number) => [0, Math.max(max, min, 1) * 1.1] } },
      hooks: { draw: [drawMarkers] },
    };
    const plot = new uPlot(options, data, element);
    chart.current = plot;
    const resize = new ResizeObserver(() => plot.setSize({ width: Math.max(200, element.clientWidth), height }));
    resize.observe(element);
    return () => {
      resize.disconnect();
      plot.destroy();
      chart.current = null;
    };
    // The chart is built once per set of series; data changes go through setData below.
  }, [series.map((one) => one.label).join("\u0000")]);

  useEffect(() => {
    chart.current?.setData(data);
  });

  return html`<figure class="chart">
    <figcaption>${title}</figcaption>
    <div ref=${box} class="chart-canvas"></div>
    ${times.length < 2 ? html`<p class="muted chart-empty">Collecting samples (every 2 s)…</p>` : null}
  </figure>`;
}
