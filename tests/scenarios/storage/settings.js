import { save, load } from './storage.js';

const DEFAULTS = { theme: 'light', fontSize: 14 };

export function getSettings() {
  return { ...DEFAULTS, ...load('settings', {}) };
}

export function updateSettings(changes) {
  const next = { ...getSettings(), ...changes };
  save('settings', next);
  return next;
}
