const http = require('http');
const config = require('./config');
const { connect } = require('./db');

const server = http.createServer((req, res) => {
  res.end('ok');
});

connect(config.db.host, config.db.name).then(() => {
  server.listen(config.port, () => {
    console.log(`listening on ${config.port}`);
  });
});
