const users = [
  { id: 1, name: 'Ada', age: 36, active: true },
  { id: 2, name: 'Linus', age: 28, active: false },
  { id: 3, name: 'Grace', age: 45, active: true },
];

const names = users.map((user) => user.name);
const active = users.filter((user) => user.active);
const totalAge = users.reduce((sum, user) => sum + user.age, 0);

for (let i = 0; i < users.length; i++) {
  console.log(users[i].name);
}

module.exports = { users, names, active, totalAge };
