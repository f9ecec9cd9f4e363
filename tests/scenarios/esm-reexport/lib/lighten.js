import { hexToRgb, rgbToHex } from './color.js';

export function lighten(hex, amount) {
  const { r, g, b } = hexToRgb(hex);
  const up = (c) => Math.min(255, Math.round(c + (255 - c) * amount));
  return rgbToHex({ r: up(r), g: up(g), b: up(b) });
}
