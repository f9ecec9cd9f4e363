export interface ClientOptions {
  baseUrl: string;
  timeout?: number;
  retries?: number;
}

export declare class Client {
  constructor(options: ClientOptions);
  request<T = unknown>(path: string, init?: RequestInit): Promise<T>;
}
