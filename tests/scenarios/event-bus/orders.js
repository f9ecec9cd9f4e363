const bus = require('./bus');

function placeOrder(order) {
  bus.publish('order.placed', order);
  return order.id;
}

function cancelOrder(order) {
  bus.publish('order.cancelled', order);
}

const unsubscribe = bus.subscribe('order.placed', (event) => {
  console.log(`order ${event.payload.id} placed`);
});

module.exports = { placeOrder, cancelOrder, unsubscribe };
