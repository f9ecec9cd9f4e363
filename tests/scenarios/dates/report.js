const { addDays, formatDate } = require('./dates');

function weekRange(start) {
  const end = addDays(start, 6);
  return `${formatDate(start)} to ${formatDate(end)}`;
}

function dueDate(invoice) {
  return formatDate(addDays(invoice.issuedAt, invoice.termsDays));
}

module.exports = { weekRange, dueDate };
