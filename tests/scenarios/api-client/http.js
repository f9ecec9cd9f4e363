export const BASE_URL = 'https://api.example.com/v1';

export async function getJSON(url, options = {}) {
  const response = await fetch(url, { ...options, headers: { Accept: 'application/json' } });
  if (!response.ok) {
    throw new Error(`GET ${url} failed: ${response.status}`);
  }
  return response.json();
}
