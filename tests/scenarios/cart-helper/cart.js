import { formatPrice, sumBy } from './utils.js';

export class Cart {
  constructor() {
    this.items = [];
  }

  add(item) {
    this.items.push(item);
  }

  subtotal() {
    return sumBy(this.items, 'price');
  }

  total() {
    return formatPrice(this.subtotal());
  }
}
