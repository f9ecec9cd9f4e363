const express = require('express');
const { requireAuth, requireRole } = require('./auth');

const app = express();
app.use(express.json());

app.get('/me', requireAuth, (req, res) => {
  res.json(req.user);
});

app.get('/admin', requireAuth, requireRole('admin'), (req, res) => {
  res.json({ ok: true });
});

app.listen(3000);
