const User = require('./user');

class Admin extends User {
  constructor(name, email, permissions = []) {
    super(name, email);
    this.permissions = permissions;
  }

  can(permission) {
    return this.permissions.includes(permission);
  }
}

module.exports = Admin;
