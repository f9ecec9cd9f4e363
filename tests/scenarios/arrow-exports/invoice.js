import { sum, clamp, round } from './math.js';

export function invoiceTotal(lines, discount) {
  const subtotal = lines.map((line) => line.price * line.quantity).reduce(sum, 0);
  const rate = clamp(discount, 0, 0.5);
  return round(subtotal * (1 - rate));
}
