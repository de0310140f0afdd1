// Keeps the tab live beside a training run: it asks again for what may have changed (app.js's `refresh`) when
// TensorBoard reloads (its ⟳ button, its auto-reload timer: the host's 'experimental.DataReloaded') or its run
// list changes, and on a timer of its own at TensorBoard's auto-reload period, so that the tab follows a run
// even with TensorBoard's auto-reload off (its default in 2.21). The period is TensorBoard's setting (the
// `autoReloadPeriodInMs` TensorBoard keeps in this origin's localStorage, which it honours above 30 s) or 30 s,
// its default; the page's URL may set another, `#cnnviz&p.cnnviz.reload=<seconds>` (tests use it).

import { connectHost, runColors } from './host.js';

export const DEFAULT_PERIOD_MS = 30_000; // TensorBoard's default auto-reload period
const MIN_PERIOD_MS = 1000;

/**
 * Starts following: `refresh()` (a promise) is called at most once at a time, and again once if asked for
 * meanwhile. Returns {colors (runColors(), fed TensorBoard's run lists), ready (a promise: TensorBoard's run list
 * asked for, or given up on), setPaused(bool), periodMs()}.
 */
export function startLive(refresh) {
  const host = connectHost();
  const colors = runColors();
  let period = storedPeriod();
  let timer = 0;
  let running = null;
  let again = false;
  let paused = false;

  function run() {
    if (running) {
      again = true;
      return running;
    }
    clearTimeout(timer);
    running = Promise.resolve().then(refresh).catch(() => {}).finally(() => {
      running = null;
      if (again) {
        again = false;
        run();
      } else schedule();
    });
    return running;
  }

  function schedule() {
    clearTimeout(timer);
    if (!paused) timer = setTimeout(() => (document.hidden ? schedule() : run()), period);
  }

  host.on('experimental.DataReloaded', () => run());
  host.on('experimental.RunsChanged', (names) => {
    colors.learn(names);
    run();
  });
  const ready = Promise.all([
    host.ask('experimental.GetRuns').then((names) => colors.learn(names)),
    host.ask('experimental.GetURLPluginData').then((data) => {
      // TensorBoard 2.21 answers {} here whatever its URL holds: the page's own hash is read as well.
      const seconds = Number((data && data.reload) ?? hashParameter('p.cnnviz.reload'));
      if (Number.isFinite(seconds) && seconds > 0) period = Math.max(MIN_PERIOD_MS, seconds * 1000);
    }),
  ]).then(() => schedule());

  return {
    colors,
    ready,
    refreshNow: run,
    setPaused(value) {
      paused = Boolean(value);
      if (paused) clearTimeout(timer);
      else schedule();
    },
    periodMs: () => period,
  };
}

/** A parameter of the TensorBoard page's URL hash (`#cnnviz&key=value`), or null (also outside TensorBoard). */
function hashParameter(key) {
  try {
    return new URLSearchParams(window.parent.location.hash.slice(1)).get(key);
  } catch {
    return null;
  }
}

/** TensorBoard's auto-reload period from its stored settings (it takes only values above 30 s), else 30 s. */
function storedPeriod() {
  try {
    const settings = JSON.parse(window.localStorage.getItem('_tb_global_settings') || '{}');
    const stored = Number(settings && settings.autoReloadPeriodInMs);
    return Number.isFinite(stored) && stored > DEFAULT_PERIOD_MS ? stored : DEFAULT_PERIOD_MS;
  } catch {
    return DEFAULT_PERIOD_MS;
  }
}
