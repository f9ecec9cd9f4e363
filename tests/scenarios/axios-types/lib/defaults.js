import { mergeConfig } from './mergeConfig.js';

const defaults = {
  timeout: 0,
  headers: {
    Accept: 'application/json, text/plain, */*',
    'Content-Type': undefined,
  },
};

export function withDefaults(config) {
  return mergeConfig(defaults, config);
}

export default defaults;
