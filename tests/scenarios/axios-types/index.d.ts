export type AxiosHeaderValue = string | string[] | number | boolean | null;

export interface RawAxiosHeaders {
  [key: string]: AxiosHeaderValue;
}

export type RawAxiosRequestHeaders = Partial<RawAxiosHeaders & {
  Accept: AxiosHeaderValue;
  'Content-Type': AxiosHeaderValue;
}>;

export interface AxiosRequestConfig<D = any> {
  url?: string;
  method?: string;
  baseURL?: string;
  headers?: RawAxiosRequestHeaders;
  timeout?: number;
  data?: D;
}

export declare function mergeConfig(config1: AxiosRequestConfig, config2?: AxiosRequestConfig): AxiosRequestConfig;

export default axios;
