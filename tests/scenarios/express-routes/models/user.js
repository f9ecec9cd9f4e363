const db = require('../db');

class User {
  constructor(row) {
    this.id = row.id;
    this.name = row.name;
    this.email = row.email;
  }

  static async findAll() {
    const rows = await db.query('SELECT * FROM users');
    return rows.map((row) => new User(row));
  }

  static async findById(id) {
    const rows = await db.query('SELECT * FROM users WHERE id = ?', [id]);
    return rows.length ? new User(rows[0]) : null;
  }

  async destroy() {
    await db.query('DELETE FROM users WHERE id = ?', [this.id]);
  }
}

module.exports = User;
