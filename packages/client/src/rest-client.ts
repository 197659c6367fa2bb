import { ClientErrorCode, GatehouseClientError } from './client-error.js';

/** What REST calls need from the client: where, how, and the current token. */
export interface RestContext {
  baseUrl: string;
  fetch: typeof fetch;
  /** The token to present (the client's current one). */
  token(): Promise<string | null>;
  /** Asks the app for a new token after a 401; null when it has none. */
  renewToken(): Promise<string | null>;
}

const TOKEN_ERRORS = ['TOKEN_EXPIRED', 'TOKEN_INVALID', 'TOKEN_REVOKED', 'MISSING_TOKEN'];

/**
 * One JSON request with `Authorization: Bearer` (tokens never go in URLs). A 401 for the
 * token gets one retry with a renewed token. Failures become GatehouseClientError with
 * the server's error code.
 */
export async function restRequest<T>(
  ctx: RestContext,
  method: string,
  path: string,
  options: { body?: unknown; auth?: boolean } = {},
): Promise<T> {
  const call = async (token: string | null) => {
    const headers: Record<string, string> = {};
    if (token) headers.authorization = `Bearer ${token}`;
    if (options.body !== undefined) headers['content-type'] = 'application/json';
    let res: Response;
    try {
      res = await ctx.fetch(ctx.baseUrl + path, {
        method,
        headers,
        ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
      });
    } catch (cause) {
      throw new GatehouseClientError(ClientErrorCode.NETWORK, `${method} ${path} failed: ${cause}`, 0, undefined, {
        cause,
      });
    }
    const text = await res.text();
    let body: any = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {}
    return { res, body };
  };
  let { res, body } = await call(options.auth === false ? null : await ctx.token());
  if (res.status === 401 && options.auth !== false && TOKEN_ERRORS.includes(body?.error)) {
    const renewed = await ctx.renewToken();
    if (renewed) ({ res, body } = await call(renewed));
  }
  if (!res.ok)
    throw new GatehouseClientError(
      body?.error ?? `HTTP_${res.status}`,
      body?.message ?? body?.err_msg ?? `${method} ${path}: HTTP ${res.status}`,
      res.status,
    );
  return body as T;
}
