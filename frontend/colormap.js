// Colour maps shared by views: values in [0, 1] to colours, by linear interpolation between stops.

/** A colour map from `stops` ([[position, [r, g, b]], ...], positions rising from 0 to 1). */
function colorMap(stops) {
  const at = (value) => {
    const t = Math.min(1, Math.max(0, Number.isFinite(value) ? value : 0));
    let k = 0;
    while (k < stops.length - 2 && t > stops[k + 1][0]) k += 1;
    const [t0, c0] = stops[k];
    const [t1, c1] = stops[k + 1];
    const f = (t - t0) / (t1 - t0);
    return c0.map((value0, channel) => value0 + f * (c1[channel] - value0));
  };
  const lut = new Uint8ClampedArray(256 * 3);
  for (let i = 0; i < 256; i += 1) lut.set(at(i / 255), i * 3);
  return {
    /** The CSS colour of a value in [0, 1] (clamped; not a number: 0). */
    css(value) {
      const [r, g, b] = at(value).map(Math.round);
      return `rgb(${r}, ${g}, ${b})`;
    },
    /** Maps the grey levels drawn on `context` (0..width, 0..height) through the colour map, in place. */
    apply(context, width, height) {
      const pixels = context.getImageData(0, 0, width, height);
      const data = pixels.data;
      for (let i = 0; i < data.length; i += 4) {
        const v = data[i] * 3;
        data[i] = lut[v];
        data[i + 1] = lut[v + 1];
        data[i + 2] = lut[v + 2];
        data[i + 3] = 255;
      }
      context.putImageData(pixels, 0, 0);
    },
  };
}

/** "inferno"-like stops (matplotlib): dark is low, yellow is high. For heat maps. */
export const inferno = colorMap([
  [0, [0, 0, 4]], [0.25, [87, 16, 110]], [0.5, [188, 55, 84]], [0.75, [249, 142, 9]], [1, [252, 255, 164]],
]);

/** Dark blue, teal, yellow (a viridis-like ramp, readable over photos and greys). */
export const viridis = colorMap([
  [0, [68, 1, 84]], [0.25, [59, 82, 139]], [0.5, [33, 145, 140]], [0.75, [94, 201, 98]], [1, [253, 231, 37]],
]);
