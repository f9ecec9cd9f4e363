const { Cart } = require('./cart');

describe('Cart', () => {
  it('starts empty', () => {
    const cart = new Cart();
    expect(cart.total()).toBe(0);
  });

  it('adds items', () => {
    const cart = new Cart();
    cart.add('apple', 2, 3);
    expect(cart.total()).toBe(6);
  });

  it('adds items with default quantity', () => {
    const cart = new Cart();
    cart.add('pear', 5);
    expect(cart.total()).toBe(5);
  });
});
