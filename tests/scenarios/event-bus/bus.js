const { EventEmitter } = require('events');

class Bus extends EventEmitter {
  publish(topic, payload) {
    this.emit(topic, { topic, payload, at: Date.now() });
  }

  subscribe(topic, handler) {
    this.on(topic, handler);
    return () => this.off(topic, handler);
  }
}

module.exports = new Bus();
