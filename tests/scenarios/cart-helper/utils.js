export function formatPrice(cents) {
  const dollars = (cents / 100).toFixed(2);
  return `$${dollars}`;
}

export function sumBy(items, key) {
  return items.reduce((total, item) => total + item[key], 0);
}
