import { isEmail, isNonEmpty, minLength } from './validators.js';

export function validateSignup(form) {
  const errors = {};
  if (!isNonEmpty(form.name)) {
    errors.name = 'Name is required';
  }
  if (!isEmail(form.email)) {
    errors.email = 'Email is invalid';
  }
  if (!minLength(form.password, 8)) {
    errors.password = 'Password must be at least 8 characters';
  }
  return errors;
}
