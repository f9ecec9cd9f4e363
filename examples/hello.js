// Sum the numbers of an array.
function sum(numbers) {
  let total = 0;
  for (let i = 0; i <
