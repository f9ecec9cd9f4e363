import { BASE_URL, getJSON } from './http.js';

export async function listUsers() {
  return getJSON(`${BASE_URL}/users`);
}

export async function getUser(id) {
  return getJSON(`${BASE_URL}/users/${id}`);
}

export async function getUserPosts(id) {
  return getJSON(`${BASE_URL}/users/${id}/posts`);
}
