import { Client } from './client.js';

const client = new Client({ baseUrl: 'https://example.com', timeout: 1000 });

export async function fetchProfile(id) {
  return client.request(`/profiles/${id}`);
}
