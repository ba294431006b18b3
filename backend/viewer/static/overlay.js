// The X-ray with its heatmap on top: cut from the result's panels image
// (original, contrast-enhanced | heatmap | overlay, side by side with a white gap between).
//
// The heatmap panel is the heat coloured with OpenCV's JET map everywhere, blue where cold. To
// lay it over the X-ray without tinting the whole image, each pixel's heat is read back from its
// colour and becomes its alpha: cold areas are clear, hot ones opaque, as in the server's own
// overlay panel (heat shows from 0.2 up). The opacity slider scales the whole layer.

const HEAT_FLOOR = 0.2; // the server's overlay shows heat at or above this
const MAX_ALPHA = 0.85;

/** Panel width of a panels image `width` pixels wide: 3 panels + 2 gaps of max(2, w // 64). */
export function panelWidth(width) {
  for (let w = Math.floor(width / 3); w > 0; w -= 1) {
    if (3 * w + 2 * Math.max(2, Math.floor(w / 64)) <= width) return w;
  }
  return Math.floor(width / 3);
}

// JET as OpenCV draws it (within 0.2 %): r, g, b rise and fall linearly around 3/4, 2/4, 1/4.
const JET = (() => {
  const table = new Float32Array(256 * 3);
  const ramp = (x, centre) => Math.min(1, Math.max(0, 1.5 - Math.abs(4 * x - centre)));
  for (let i = 0; i < 256; i += 1) {
    const x = i / 255;
    table[i * 3] = ramp(x, 3) * 255;
    table[i * 3 + 1] = ramp(x, 2) * 255;
    table[i * 3 + 2] = ramp(x, 1) * 255;
  }
  return table;
})();

/** Heat (0-1) of a JET colour: the nearest entry of the map (memoised per 4-level colour cell). */
function heatReader() {
  const memo = new Float32Array(64 * 64 * 64).fill(-1);
  return (r, g, b) => {
    const cell = ((r >> 2) << 12) | ((g >> 2) << 6) | (b >> 2);
    if (memo[cell] >= 0) return memo[cell];
    let best = 0;
    let bestDistance = Infinity;
    for (let i = 0; i < 256; i += 1) {
      const dr = r - JET[i * 3];
      const dg = g - JET[i * 3 + 1];
      const db = b - JET[i * 3 + 2];
      const distance = dr * dr + dg * dg + db * db;
      if (distance < bestDistance) {
        bestDistance = distance;
        best = i;
      }
    }
    memo[cell] = best / 255;
    return memo[cell];
  };
}

/** Draw panel 1 on `base` and panel 2, with heat as alpha, on `heat`. Returns the panel size. */
export async function drawPanels(blob, base, heat) {
  const bitmap = await createImageBitmap(blob);
  const height = bitmap.height;
  const width = panelWidth(bitmap.width);
  const gap = Math.max(2, Math.floor(width / 64));
  for (const canvas of [base, heat]) {
    canvas.width = width;
    canvas.height = height;
  }
  base.getContext("2d").drawImage(bitmap, 0, 0, width, height, 0, 0, width, height);
  const context = heat.getContext("2d", { willReadFrequently: true });
  context.drawImage(bitmap, width + gap, 0, width, height, 0, 0, width, height);
  const pixels = context.getImageData(0, 0, width, height);
  const data = pixels.data;
  const read = heatReader();
  for (let i = 0; i < data.length; i += 4) {
    const level = read(data[i], data[i + 1], data[i + 2]);
    const alpha = Math.min(1, Math.max(0, (level - HEAT_FLOOR) / (1 - HEAT_FLOOR)));
    data[i + 3] = Math.round(alpha * MAX_ALPHA * 255);
  }
  context.putImageData(pixels, 0, 0);
  bitmap.close();
  return { width, height };
}
