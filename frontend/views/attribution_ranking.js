// The methods of a run ranked by their map checks (issue 25), for the "Where it looks" view: per method
// logged with checks=True, at its latest step at or before the slider's, the mean over the probe images of
// deletion AUC, insertion AUC, the sanity check's similarity and (with object masks) the pointing game, each
// ranked across the methods; each metric's known pitfall is its heading's hover text. Only draws meta.checks.

import { el } from '../dom.js';

/** What each metric says, which way is better, and how it misleads: the heading's hover text. */
export const METRICS = [
  {
    key: 'deletion', label: 'Deletion AUC', better: 'lower',
    pitfall: 'Area under the class probability as the pixels the map ranks highest are deleted (Petsiuk '
      + 'et al., RISE); lower is better. Pitfalls: "deleted" means set to a baseline, here 0, which on '
      + 'normalised inputs is the data set\'s mean colour, not an absence, and the patchwork it leaves is '
      + 'off the training distribution, so the score measures the model\'s reaction to artefacts too. The '
      + 'mask\'s shape leaks the class (ROAD, Rong et al. 2022): smooth, blob-like maps (Grad-CAM, '
      + 'occlusion) delete whole object shapes and can look better than a faithful but scattered map.',
  },
  {
    key: 'insertion', label: 'Insertion AUC', better: 'higher',
    pitfall: 'Area under the class probability as the top-ranked pixels are revealed on a blank (0) image; '
      + 'higher is better. Pitfalls: the revealed shape itself leaks the class (ROAD-style leakage, Rong et '
      + 'al. 2022), which favours smooth maps; a zero baseline on normalised inputs is a mean-coloured image '
      + 'the model may already call a class; few steps (32 here) blur the differences between close methods.',
  },
  {
    key: 'sanity', label: 'Sanity (similarity)', better: 'lower',
    pitfall: 'Mean rank correlation of |map| with the trained model\'s as the layers are re-drawn from the '
      + 'logits down (Adebayo et al. 2018); lower is better: the map depends on the weights. Pitfalls: the '
      + 'verdict depends on the similarity measure (rank correlation of |map| here; signed maps, SSIM or HOG '
      + 'similarity order methods differently, Binder et al. 2023), on the re-draw distribution and on the '
      + 'layers compared; a map that changes when the weights do is not thereby right, and a noisy map '
      + 'changes easily.',
  },
  {
    key: 'pointing', label: 'Pointing game', better: 'higher',
    pitfall: 'Share of images whose map\'s highest pixel lies on the object mask (Zhang et al. 2016); higher '
      + 'is better. Pitfalls: it scores one pixel, so a blurry map with one central peak (Grad-CAM at a '
      + 'coarse layer, occlusion) wins easily, a centre-biased guess scores well on centred objects, and big '
      + 'objects make hits cheap; it says nothing about the rest of the map. Shown only where masks were '
      + 'logged.',
  },
];

function finite(value) {
  return typeof value === 'number' && Number.isFinite(value);
}

function mean(values) {
  const kept = (Array.isArray(values) ? values : []).filter(finite);
  return kept.length ? kept.reduce((a, b) => a + b, 0) / kept.length : null;
}

function isChecks(checks) {
  return Boolean(checks) && typeof checks === 'object';
}

/** A method's metrics from its meta.checks: {deletion, insertion, sanity, pointing, random_*}, or null. */
export function methodMetrics(checks) {
  const auc = (key) => mean((checks[key] || {}).auc);
  const pointing = Array.isArray(checks.pointing) ? checks.pointing : [];
  const hits = pointing.filter((hit) => typeof hit === 'boolean');
  return {
    deletion: auc('deletion'),
    insertion: auc('insertion'),
    sanity: mean((Array.isArray(checks.similarity) ? checks.similarity : []).map(mean)),
    pointing: hits.length ? hits.filter(Boolean).length / hits.length : null,
    random_deletion: auc('random_deletion'),
    random_insertion: auc('random_insertion'),
  };
}

/** Competition ranks of `values` (1 = best, ties share one, null unranked); `better`: lower or higher. */
function ranks(values, better) {
  const beats = (other, value) => (better === 'lower' ? other < value : other > value);
  return values.map((value) => (finite(value)
    ? 1 + values.filter((other) => finite(other) && beats(other, value)).length
    : null));
}

function cellTitle(metric, value, rank, count, row) {
  if (!finite(value)) return `${metric.label}: not measured`;
  const curve = metric.key === 'deletion' || metric.key === 'insertion';
  const random = curve ? row.metrics[`random_${metric.key}`] : null;
  const baseline = finite(random) ? `; a random order: ${random.toFixed(3)}` : '';
  const shown = `${metric.label} ${value.toFixed(3)} (${metric.better} is better)`;
  return `${shown}${baseline}; rank ${rank} of ${count}`;
}

function headerRow(metrics) {
  return el('tr', {}, [
    el('th', { text: 'method' }),
    el('th', { text: 'step' }),
    ...metrics.map((metric) => el('th', { className: 'metric-pitfall', dataset: { metric: metric.key },
      attrs: { tabindex: '0', scope: 'col' }, title: metric.pitfall }, [
      `${metric.label} ${metric.better === 'lower' ? '↓' : '↑'}`,
      el('span', { className: 'pitfall-mark', text: '?' })])),
    el('th', { text: 'mean rank', title: 'the mean of the method\'s ranks over the columns shown' }),
  ]);
}

function bodyRow(row, metrics, count) {
  return el('tr', { dataset: { method: row.method } }, [
    el('th', { attrs: { scope: 'row' }, text: row.title }),
    el('td', { className: 'ranking-step', text: String(row.step) }),
    ...metrics.map((metric) => {
      const value = row.metrics[metric.key];
      const rank = row.ranks[metric.key];
      return el('td', { className: `ranking-value${rank === 1 ? ' rank-best' : ''}`,
        dataset: { metric: metric.key, rank: rank ?? '' },
        title: cellTitle(metric, value, rank, count, row) }, [
        el('span', { text: finite(value) ? value.toFixed(2) : '–' }),
        finite(value) ? el('span', { className: 'rank-number', text: ` #${rank}` }) : null,
      ]);
    }),
    el('td', { className: 'ranking-overall', text: finite(row.overall) ? row.overall.toFixed(1) : '–' }),
  ]);
}

/**
 * The ranking table. `entries`: [{method, title, step, meta}] (a method's sample at its latest step at or
 * before the slider's). Null when no method was logged.
 */
export function rankingTable(entries) {
  const logged = entries.filter((entry) => entry.meta);
  if (!logged.length) return null;
  const rows = logged.filter((entry) => isChecks(entry.meta.checks))
    .map((entry) => ({ ...entry, metrics: methodMetrics(entry.meta.checks), ranks: {} }));
  const unchecked = logged.filter((entry) => !isChecks(entry.meta.checks)).map((entry) => entry.title);
  const heading = el('h3', { text: 'Methods ranked by their map checks '
    + '(mean over the probe images; hover a heading for its pitfall)' });
  const missing = unchecked.length ? el('div', { className: 'note ranking-unchecked',
    text: `Logged without checks, not ranked: ${unchecked.join(', ')} `
      + '(log_saliency(..., checks=True) ranks them).',
  }) : null;
  if (!rows.length) return el('section', { className: 'method-ranking' }, [missing]); // one line: nothing ranked
  const metrics = METRICS.filter((metric) => rows.some((row) => finite(row.metrics[metric.key])));
  for (const metric of metrics) {
    const ranked = ranks(rows.map((row) => row.metrics[metric.key]), metric.better);
    ranked.forEach((rank, i) => { rows[i].ranks[metric.key] = rank; });
  }
  for (const row of rows) row.overall = mean(metrics.map((metric) => row.ranks[metric.key]));
  const order = (row) => (finite(row.overall) ? row.overall : Infinity);
  rows.sort((a, b) => order(a) - order(b) || a.title.localeCompare(b.title));
  const table = el('table', { className: 'ranking-table' }, [
    el('thead', {}, [headerRow(metrics)]),
    el('tbody', {}, rows.map((row) => bodyRow(row, metrics, rows.length))),
  ]);
  return el('section', { className: 'method-ranking' }, [
    heading, el('div', { className: 'ranking-scroll' }, [table]), missing]);
}
