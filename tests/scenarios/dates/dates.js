const MS_PER_DAY = 24 * 60 * 60 * 1000;

function addDays(date, days) {
  return new Date(date.getTime() + days * MS_PER_DAY);
}

function formatDate(date) {
  return date.toISOString().slice(0, 10);
}

module.exports = { addDays, formatDate, MS_PER_DAY };
