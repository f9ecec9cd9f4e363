const config = require('./config');

async function connect(host, name) {
  console.log(`connecting to ${name} on ${host} (log level ${config.logLevel})`);
  return { host, name };
}

module.exports = { connect };
