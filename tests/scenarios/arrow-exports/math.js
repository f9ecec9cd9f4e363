export const sum = (a, b) => a + b;
export const clamp = (value, min, max) => Math.min(Math.max(value, min), max);
export const round = (value, digits = 2) => Number(value.toFixed(digits));
