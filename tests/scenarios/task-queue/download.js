import { TaskQueue } from './queue.js';

const queue = new TaskQueue(4);
const urls = ['https://a.example', 'https://b.example', 'https://c.example'];

for (let k = 0; k < urls.length; k++) {
  queue.push(() => fetch(urls[k]));
}
