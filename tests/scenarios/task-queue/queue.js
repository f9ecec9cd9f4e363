export class TaskQueue {
  constructor(concurrency = 2) {
    this.concurrency = concurrency;
    this.running = 0;
    this.pending = [];
  }

  push(task) {
    this.pending.push(task);
    this.next();
  }

  next() {
    while (this.running < this.concurrency && this.pending.length) {
      const task = this.pending.shift();
      this.running++;
      task().finally(() => {
        this.running--;
        this.next();
      });
    }
  }
}
