// The "Channel images" view: inputs optimised to maximise each channel of a layer (Olah et al.'s parameterisation
// with jitter), each beside the same channel's filter and top patches when other views provide them
// (ctx.ask('filterTile'), ctx.ask('topPatches')).

import { el, emptyBox, formatNumber, pictureFigure } from '../dom.js';
import { pictureUrls, sampleView } from '../samples.js';
import { stepsTaken } from './class_models.js';

export default sampleView({
  kind: 'channel_images',
  title: 'Channel images',
  noun: 'channel images',
  logCalls: ['viz.log_channel_images(step, layer)'],
  content: async (ctx) => channelImagesView(ctx.sample, pictureUrls(ctx), {
    top: await ctx.ask('topPatches', ctx.layer, ctx.step),
    loadFilter: (filterLayer, filter) => ctx.ask('filterTile', filterLayer, ctx.step, filter),
  }),
});

/**
 * `context.top`: {step, patchesOf(channel, size)} of the same layer's top patches at or before this step, or null;
 * `context.loadFilter(layer, filter)`: a promise of the filter's tile (or null).
 */
function channelImagesView(sample, urls, context = {}) {
  const meta = sample.meta || {};
  const channels = Array.isArray(meta.channels) ? meta.channels : [];
  if (!channels.length) return emptyBox('No channels in this sample.');
  const top = context.top || null;
  let withPatches = 0;
  const rows = channels.map((channel, i) => {
    const parts = [pictureFigure(urls[i], `channel ${channel}`, [`channel ${channel}`,
      `mean activation ${formatNumber((meta.activation || [])[i])}`])];
    if (meta.filter_layer && context.loadFilter) {
      const slot = el('div', { className: 'synth-filter', title: `filter ${channel} of ${meta.filter_layer}` });
      context.loadFilter(meta.filter_layer, channel).then((tile) => { if (tile) slot.append(tile); });
      parts.push(slot);
    }
    const patches = top ? top.patchesOf(channel, 40) : null;
    if (patches) {
      patches.classList.add('synth-top');
      parts.push(patches);
      withPatches += 1;
    }
    return el('div', { className: 'synth-channel', dataset: { channel } }, parts);
  });
  const linked = [meta.filter_layer && context.loadFilter ? `its filter in ${meta.filter_layer}` : null,
    withPatches ? `its top patches (step ${top.step})` : null].filter(Boolean);
  return el('div', { className: 'synth-view' }, [
    el('div', { className: 'note sample-meta', text: `Inputs that maximise each channel's mean activation (`
      + `${meta.max_steps ? 'decorrelated colour, Fourier space, random shifts, scales and rotations: Olah et al. 2017'
        : 'Fourier parameterisation with jitter'}), ${stepsTaken(meta)}`
      + `${linked.length ? `; beside each, ${linked.join(' and ')}` : ''}.` }),
    el('div', { className: 'synth-channels' }, rows),
  ]);
}
