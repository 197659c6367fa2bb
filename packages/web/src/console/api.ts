/** Plain JSON REST calls of the console that are not the SDK's (password login, admin API). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export async function callJson<T>(
  method: string,
  path: string,
  options: { body?: unknown; headers?: Record<string, string> } = {},
): Promise<T> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers,
      ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
    });
  } catch (err) {
    throw new ApiError(0, 'NETWORK', String(err));
  }
  const body = await res.json().catch(() => null);
  if (!res.ok) throw new ApiError(res.status, body?.error ?? `HTTP_${res.status}`, body?.message ?? res.statusText);
  return body as T;
}

export interface AgentLogin {
  token: string;
  expiresAt: number;
  user: { id: string; kind: string; name: string };
}

export function login(username: string, password: string): Promise<AgentLogin> {
  return callJson('POST', '/api/v1/public/login', { body: { username, password, device_type: 'web' } });
}
