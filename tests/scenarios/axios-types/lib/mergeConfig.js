export function mergeConfig(config1, config2 = {}) {
  const config = { ...config1 };
  for (const key of Object.keys(config2)) {
    if (config2[key] !== undefined) {
      config[key] = config2[key];
    }
  }
  return config;
}
