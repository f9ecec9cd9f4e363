export { hexToRgb, rgbToHex } from './color.js';
export { lighten } from './lighten.js';
