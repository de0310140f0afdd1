// The "Class models" view: inputs optimised to maximise each class score (Simonyan et al.), as a labelled grid
// with the probability the network gives each.

import { el, emptyBox, formatNumber, percent, pictureFigure } from '../dom.js';
import { pictureUrls, sampleView } from '../samples.js';

export default sampleView({
  kind: 'class_models',
  title: 'Class models',
  noun: 'class models',
  logCalls: ['viz.log_class_models(step)'],
  listTitle: 'Sets',
  content: async (ctx) => classModelsView(ctx.sample, pictureUrls(ctx), await ctx.ask('classNames')),
});

/** One run's class models; names from the call's `class_names`, else the run's (`classNames`), else numbers. */
function classModelsView(sample, urls, classNames = null) {
  const meta = sample.meta || {};
  const classes = Array.isArray(meta.classes) ? meta.classes : [];
  if (!classes.length) return emptyBox('No classes in this sample.');
  const runNames = Array.isArray(classNames) ? classNames : [];
  const given = Array.isArray(meta.class_names) ? meta.class_names : [];
  const names = classes.map((value, i) => (typeof given[i] === 'string' ? given[i] : runNames[value]));
  const figures = classes.map((value, i) => {
    const name = typeof names[i] === 'string' ? names[i] : String(value);
    const predicted = (meta.predicted || [])[i];
    const lines = [name, `p ${percent((meta.probability || [])[i])} · score ${formatNumber((meta.score || [])[i])}`];
    if (predicted !== undefined && predicted !== value) {
      lines.push(`seen as ${typeof names[classes.indexOf(predicted)] === 'string' ? names[classes.indexOf(predicted)] : predicted}`);
    }
    return pictureFigure(urls[i], `class model of ${name}`, lines);
  });
  return el('div', { className: 'synth-view' }, [
    el('div', { className: 'note sample-meta', text: `${whatIsMaximised(meta)}`
      + `${howMade(meta)}, ${stepsTaken(meta)}; p is the softmax probability the network gives the image, score its logit.` }),
    el('div', { className: 'synth-grid' }, figures),
  ]);
}

/** The objective: a transparent image's class log-softmax (the default since issue 25), else the class score. */
function whatIsMaximised(meta) {
  return meta.transparent
    ? 'Inputs drawn transparent over random grey backgrounds (Mordvintsev et al. 2018) to maximise each class\'s log-softmax'
    : 'Inputs that maximise each class score (Simonyan et al.)';
}

/** How the images were made: Olah et al.'s parameterisation (files from before it: L2 on pixels). */
export function howMade(meta) {
  return meta.parameterization === 'fourier'
    ? ' in decorrelated colour and Fourier space, seen through random shifts, scales and rotations (Olah et al. 2017)'
    : ' with L2 regularisation';
}

/** "N steps", and "of at most M" when early stopping ended the optimisation sooner. */
export function stepsTaken(meta) {
  const limit = meta.max_steps;
  return `${meta.steps} steps${typeof limit === 'number' && limit > meta.steps ? ` of at most ${limit} (stopped improving)` : ''}`;
}
