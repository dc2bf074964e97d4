// Charts: uPlot (vendored, loaded as a classic script that defines window.uPlot) for series
// over time, plain HTML bars for breakdowns by name (a list reads better than a pie).

import { html, useEffect, useRef, fmtNumber } from "./ui.js";

/** A line chart of `values` over `days` (YYYY-MM-DD, UTC). */
/** `formatTicks` labels an axis's ticks together (one precision for all), else `format`
 * labels each. */
export function DayChart({ title, days, values, color, format, formatTicks, testid }) {
  const box = useRef(null);
  useEffect(() => {
    const el = box.current;
    if (!el || !window.uPlot) return undefined;
    const xs = days.map((d) => Date.parse(`${d}T00:00:00Z`) / 1000);
    const width = Math.max(240, el.clientWidth || 320);
    const plot = new window.uPlot(
      {
        width,
        height: 180,
        legend: { show: false },
        cursor: { points: { size: 6 } },
        scales: { x: { time: true } },
        axes: [
          { stroke: "#64748b", grid: { stroke: "#e2e8f0" } },
          {
            stroke: "#64748b",
            grid: { stroke: "#e2e8f0" },
            size: 72,
            values: (u, ticks) =>
              formatTicks ? formatTicks(ticks) : ticks.map((v) => (format ? format(v) : fmtNumber(v))),
          },
        ],
        series: [
          {},
          {
            label: title,
            stroke: color,
            width: 2,
            fill: `${color}22`,
            points: { show: xs.length < 40 },
          },
        ],
      },
      [xs, values],
      el,
    );
    const onResize = () => plot.setSize({ width: Math.max(240, el.clientWidth), height: 180 });
    window.addEventListener("resize", onResize);
    return () => {
      window.removeEventListener("resize", onResize);
      plot.destroy();
    };
  }, [days.join(","), values.join(","), title]);
  return html`<figure class="chart" data-testid=${testid}>
    <figcaption>${title}</figcaption>
    <div ref=${box} class="chart-box"></div>
  </figure>`;
}

/** Horizontal bars: rows of {name, value}, largest first. */
export function Bars({ title, rows, format, testid }) {
  const max = Math.max(1, ...rows.map((r) => r.value));
  return html`<figure class="chart bars" data-testid=${testid}>
    <figcaption>${title}</figcaption>
    ${rows.length === 0 && html`<div class="muted">—</div>`}
    ${rows.map(
      (r) => html`<div class="bar-row" key=${r.name}>
        <span class="bar-name" title=${r.name}>${r.name}</span>
        <span class="bar-track"><span class="bar-fill" style=${{ width: `${(100 * r.value) / max}%` }}></span></span>
        <span class="bar-value">${format ? format(r.value) : fmtNumber(r.value)}</span>
      </div>`,
    )}
  </figure>`;
}
