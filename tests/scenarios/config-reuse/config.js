module.exports = {
  port: process.env.PORT || 3000,
  db: {
    host: process.env.DB_HOST || 'localhost',
    name: process.env.DB_NAME || 'app',
  },
  logLevel: process.env.LOG_LEVEL || 'info',
};
