// The "Schedule" view: what viz.autolog(budget=...) logged, at which steps, at what measured cost, and the share of
// training time spent, so a user who leaves every view on sees where the budget goes. One row per call of a
// view (the list switches them on and off), a dot at each step it was logged (its area: the call's seconds),
// the slider's step marked; under it a table of calls and seconds, and the views that never fit, with their
// cost. Data: /schedule (see http_api.md).

import { asArray, el, emptyBox, errorBox, formatNumber, hideTooltip, percent, plural, showTooltip, svg, toNumber, ACCENT } from '../dom.js';
import { notLoggedBox } from '../samples.js';

const KIND = 'schedule';
const CHART = { left: 130, right: 16, top: 8, row: 22, bottom: 30, width: 620 };
const MAX_RADIUS = 8;

const DESCRIPTOR = {
  kind: 'schedule',
  title: 'Schedule',
  noun: 'autolog schedules',
  listTitle: 'Autolog calls',
  pickMany: true,
  itemNoun: 'call',
  logCalls: ['viz.autolog(budget=0.05)'],
  load: (ctx) => runSchedule(ctx),
  stepsOf: (reply) => (reply && !(reply instanceof Error) ? [...new Set(asArray(reply.views).flatMap((view) => asArray(view.steps).map(Number)))] : []),
  column,
};
export default DESCRIPTOR;

async function runSchedule(ctx) {
  if (!asArray(ctx.entry[KIND]).length) return null;
  try {
    return await ctx.model.getJson(ctx.model.routeUrl(KIND, { run: ctx.entry.run }));
  } catch (error) {
    return error;
  }
}

async function column(ctx, reply, sliderStep) {
  if (reply === null) return { content: notLoggedBox(DESCRIPTOR, ctx) };
  if (reply instanceof Error) return { content: errorBox(reply.message) };
  const shown = new Set(ctx.items);
  const views = asArray(reply.views).filter((view) => shown.has(view.name));
  if (!views.length) return { content: emptyBox('None of the selected calls ran in this run.') };
  const shares = asArray(reply.share && reply.share.values).map(toNumber);
  const share = shares.length ? shares[shares.length - 1] : NaN;
  const budget = toNumber(reply.budget);
  const spent = el('div', { className: 'note sample-meta schedule-share', text:
    `Budget ${percent(budget)} of training time · spent ${percent(share)} so far · ${plural(views.reduce((n, view) => n + asArray(view.steps).length, 0), 'call')} shown` });
  return { content: el('div', { className: 'schedule-view' }, [spent, chart(views, sliderStep), table(views)]) };
}

/** Rows of dots over the steps: a call's dot area is its seconds (the largest call shown: MAX_RADIUS). */
function chart(views, sliderStep) {
  const steps = views.flatMap((view) => asArray(view.steps).map(Number));
  const first = Math.min(0, ...steps);
  const last = Math.max(first + 1, ...steps);
  const seconds = views.flatMap((view) => asArray(view.seconds).map(toNumber));
  const largest = Math.max(1e-9, ...seconds);
  const plot = CHART.width - CHART.left - CHART.right;
  const x = (step) => CHART.left + ((step - first) / (last - first)) * plot;
  const height = CHART.top + views.length * CHART.row + CHART.bottom;
  const root = svg('svg', { class: 'schedule-chart', width: CHART.width, height, viewBox: `0 0 ${CHART.width} ${height}` });
  views.forEach((view, row) => {
    const y = CHART.top + row * CHART.row + CHART.row / 2;
    root.append(svg('text', { x: CHART.left - 8, y: y + 4, 'text-anchor': 'end', class: view.never_fit ? 'schedule-never' : '' }, [view.name]));
    root.append(svg('line', { x1: CHART.left, x2: CHART.left + plot, y1: y, y2: y, class: 'schedule-row' }));
    asArray(view.steps).forEach((step, i) => {
      const cost = toNumber(asArray(view.seconds)[i]);
      const dot = svg('circle', { cx: x(Number(step)), cy: y, r: Math.max(2, MAX_RADIUS * Math.sqrt(cost / largest)), class: 'schedule-dot' });
      dot.dataset.view = view.name;
      dot.dataset.step = String(step);
      dot.addEventListener('mousemove', (event) => showTooltip(event, [view.name, `step ${step}`, `${formatNumber(cost)} s`]));
      dot.addEventListener('mouseleave', hideTooltip);
      root.append(dot);
    });
  });
  const bottom = CHART.top + views.length * CHART.row;
  if (Number.isFinite(sliderStep)) {
    root.append(svg('line', { x1: x(sliderStep), x2: x(sliderStep), y1: CHART.top, y2: bottom, stroke: ACCENT, 'stroke-width': 2 }));
  }
  for (const step of [first, Math.round((first + last) / 2), last]) {
    root.append(svg('text', { x: x(step), y: bottom + 16, 'text-anchor': 'middle', class: 'schedule-axis' }, [String(step)]));
  }
  return root;
}

/** Per call: how often it ran, its mean and total seconds, its last step; a call that never fit: its estimate. */
function table(views) {
  const head = el('tr', {}, ['call', 'calls', 'mean s', 'total s', 'last step'].map((text) => el('th', { text })));
  const rows = views.map((view) => {
    const seconds = asArray(view.seconds).map(toNumber);
    const total = seconds.reduce((sum, value) => sum + value, 0);
    const steps = asArray(view.steps);
    if (view.never_fit || !steps.length) return neverFitRow(view);
    return el('tr', { dataset: { view: view.name } }, [view.name, String(steps.length), formatNumber(total / steps.length), formatNumber(total),
      String(steps[steps.length - 1])].map((text) => el('td', { text })));
  });
  return el('table', { className: 'schedule-table' }, [el('thead', {}, [head]), el('tbody', {}, rows)]);
}

function neverFitRow(view) {
  const estimate = toNumber(view.estimated_seconds);
  const said = Number.isFinite(estimate) ? `never fit (~${formatNumber(estimate)} s a call)` : 'never fit';
  return el('tr', { className: 'schedule-never', dataset: { view: view.name } }, [el('td', { text: view.name }),
    el('td', { text: said, attrs: { colspan: '4' }, title: 'Its cost is more than its share of the budget so far: raise the budget, or log it yourself after training' })]);
}

