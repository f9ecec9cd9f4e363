const xs = [1, 2, 3];
let sum = 0;
for (let j = 0; j < xs.length; j++) {
  sum += xs[j];
}
console.log(sum);
