import { STATUS, ROLES } from './constants.js';

export function canLogin(user) {
  if (user.status === STATUS.DELETED) {
    return false;
  }
  if (user.status === STATUS.SUSPENDED) {
    return false;
  }
  return ROLES.includes(user.role);
}

export function suspend(user) {
  return { ...user, status: STATUS.SUSPENDED };
}
