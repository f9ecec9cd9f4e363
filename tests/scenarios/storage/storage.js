const PREFIX = 'app:';

export function save(key, value) {
  localStorage.setItem(PREFIX + key, JSON.stringify(value));
}

export function load(key, fallback = null) {
  const raw = localStorage.getItem(PREFIX + key);
  return raw === null ? fallback : JSON.parse(raw);
}

export function remove(key) {
  localStorage.removeItem(PREFIX + key);
}
