// Small SVG plots for the dashboard: lines with bands and dots over time, and scatters.
// Plain SVG markup (no library, nothing fetched): each plot is an <svg class="plot"> whose
// drawn series are <path class="series"> / <path class="band"> / <circle class="point">, each
// carrying data-series (its name) and, for paths, data-n (how many points it joins).
"use strict";

const PLOT = {w: 420, h: 210, left: 44, right: 10, top: 10, bottom: 34};
const PALETTE = ["#1e6bb3", "#b3261e", "#2e7d32", "#8e44ad", "#c77c02", "#00838f"];

const plotEsc = (s) => String(s ?? "").replace(/[&<>"]/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]));

function plotScale(d0, d1, r0, r1) {
  const span = d1 - d0 || 1;
  return (v) => r0 + ((v - d0) / span) * (r1 - r0);
}

function plotTicks(lo, hi, n) {
  const step = (hi - lo) / n;
  return Array.from({length: n + 1}, (_, i) => lo + i * step);
}

function plotTimeLabel(ms, spanMs) {
  const iso = new Date(ms).toISOString();
  return spanMs > 7 * 86400e3 ? iso.slice(0, 10) : iso.slice(5, 16).replace("T", " ");
}

// series: [{name, color, points: [[x, y], ...], band: [[x, lo, hi], ...], dots: bool, line: bool}]
// options: {kind, x: "time" | "number", xDomain, yDomain, xLabel, yLabel, diagonal}
function plot(series, options) {
  const p = PLOT, o = options;
  const xs = series.flatMap((s) => s.points.map((q) => q[0]).concat((s.band || []).map((b) => b[0])));
  const ys = series.flatMap((s) => s.points.map((q) => q[1]).concat((s.band || []).flatMap((b) => [b[1], b[2]])));
  let [x0, x1] = o.xDomain || [Math.min(...xs), Math.max(...xs)];
  if (!xs.length) [x0, x1] = [0, 1];
  if (x0 === x1) { x0 -= o.x === "time" ? 3600e3 : 0.5; x1 += o.x === "time" ? 3600e3 : 0.5; }
  let [y0, y1] = o.yDomain || [Math.min(0, ...ys), Math.max(1e-9, ...ys) * 1.1];
  const X = plotScale(x0, x1, p.left, p.w - p.right);
  const Y = plotScale(y0, y1, p.h - p.bottom, p.top);
  let out = `<svg class="plot" data-plot="${plotEsc(o.kind)}" viewBox="0 0 ${p.w} ${p.h}" width="100%" role="img">`;
  for (const t of plotTicks(y0, y1, 4)) {
    out += `<line x1="${p.left}" x2="${p.w - p.right}" y1="${Y(t)}" y2="${Y(t)}" stroke="#e4e6eb"/>` +
      `<text x="${p.left - 4}" y="${Y(t) + 3}" font-size="9" text-anchor="end" fill="#667">${+t.toPrecision(3)}</text>`;
  }
  plotTicks(x0, x1, 3).forEach((t, i) => {
    const label = o.x === "time" ? plotTimeLabel(t, x1 - x0) : +t.toFixed(2);
    const anchor = i === 0 ? "start" : i === 3 ? "end" : "middle";  // the ends stay inside
    out += `<text x="${X(t)}" y="${p.h - p.bottom + 12}" font-size="9" text-anchor="${anchor}" fill="#667">${plotEsc(label)}</text>`;
  });
  out += `<text x="${(p.left + p.w - p.right) / 2}" y="${p.h - 4}" font-size="10" text-anchor="middle" fill="#445">${plotEsc(o.xLabel)}</text>` +
    `<text x="10" y="${(p.top + p.h - p.bottom) / 2}" font-size="10" text-anchor="middle" fill="#445" transform="rotate(-90 10 ${(p.top + p.h - p.bottom) / 2})">${plotEsc(o.yLabel)}</text>`;
  if (o.diagonal) {
    const lo = Math.max(x0, y0), hi = Math.min(x1, y1);
    out += `<line class="diagonal" x1="${X(lo)}" y1="${Y(lo)}" x2="${X(hi)}" y2="${Y(hi)}" stroke="#9aa5b8" stroke-dasharray="4 3"/>`;
  }
  series.forEach((s, i) => {
    const color = s.color || PALETTE[i % PALETTE.length];
    const name = plotEsc(s.name);
    if (s.band && s.band.length) {
      const upper = s.band.map((b) => `${X(b[0])},${Y(b[2])}`);
      const lower = s.band.slice().reverse().map((b) => `${X(b[0])},${Y(b[1])}`);
      out += `<path class="band" data-series="${name}" data-n="${s.band.length}" d="M${upper.concat(lower).join("L")}Z" fill="${color}" fill-opacity="0.15" stroke="none"/>`;
    }
    if (s.line !== false && s.points.length) {
      const d = "M" + s.points.map((q) => `${X(q[0])},${Y(q[1])}`).join("L");
      out += `<path class="series" data-series="${name}" data-n="${s.points.length}" d="${d}" fill="none" stroke="${color}" stroke-width="1.6"${s.dashed ? ' stroke-dasharray="5 3"' : ""}/>`;
    }
    if (s.dots) {
      for (const q of s.points) {
        out += `<circle class="point" data-series="${name}" cx="${X(q[0])}" cy="${Y(q[1])}" r="${s.r || 2.6}" fill="${color}" fill-opacity="${s.opacity || 0.9}"><title>${name}: ${+q[1].toFixed(4)}</title></circle>`;
      }
    }
  });
  out += "</svg>";
  const legend = series.filter((s) => s.name).map((s, i) =>
    `<span style="color:${s.color || PALETTE[i % PALETTE.length]}">■</span> ${plotEsc(s.name)}`).join(" &nbsp;");
  return `<div class="plot-box"><div class="plot-title">${plotEsc(o.title)}</div>${out}<div class="legend">${legend}</div></div>`;
}
