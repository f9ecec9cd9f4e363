const { add, subtract, multiply } = require('./math');

describe('math', () => {
  test('adds two numbers', () => {
    expect(add(1, 2)).toBe(3);
  });

  test('subtracts two numbers', () => {
    expect(subtract(5, 2)).toBe(3);
  });

  test('multiplies two numbers', () => {
    expect(multiply(3, 4)).toBe(12);
  });
});
