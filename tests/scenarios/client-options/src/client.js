export class Client {
  constructor(options = {}) {
    this.baseUrl = options.baseUrl;
    this.timeout = options.timeout || 5000;
    this.retries = options.retries || 0;
  }

  async request(path, init = {}) {
    const response = await fetch(this.baseUrl + path, init);
    return response.json();
  }
}
