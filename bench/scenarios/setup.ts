import { BENCH_ADMIN_KEY, mintToken } from '../common.js';
import type { SideContext } from './types.js';

export async function post(url: string, headers: Record<string, string>, body: unknown): Promise<any> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(30_000),
  });
  const json = await response.json();
  if (response.status >= 300) throw new Error(`POST ${url}: ${response.status} ${JSON.stringify(json)}`);
  return json;
}

/**
 * Principals for a scenario, each with a token. Gatehouse: an app key from the admin API,
 * then each user through the open API (`POST /openapi/v1/user/login`), which returns its
 * token. Baseline: tokens minted with the shared key (it has no users to create).
 */
export async function principals(
  ctx: SideContext,
  ids: string[],
  device: string,
): Promise<{ id: string; token: string }[]> {
  if (ctx.side === 'baseline') return ids.map((id) => ({ id, token: mintToken(ctx.key, { sub: id }) }));
  const app = await post(`${ctx.httpUrl}/api/v1/admin/app-keys`, { 'x-admin-key': BENCH_ADMIN_KEY }, { name: 'bench' });
  const out: { id: string; token: string }[] = new Array(ids.length);
  let next = 0;
  const worker = async () => {
    while (next < ids.length) {
      const i = next++;
      const id = ids[i] as string;
      const reply = await post(
        `${ctx.httpUrl}/openapi/v1/user/login`,
        { 'x-app-key': app.key },
        { id, nickname: id, device },
      );
      out[i] = { id, token: String(reply.data.token).replace(/^Bearer /, '') };
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  return out;
}

/** A group conversation with these members (Gatehouse: admin API; baseline: just an id). */
export async function group(ctx: SideContext, members: string[]): Promise<string> {
  if (ctx.side === 'baseline') return 'gr_bench';
  const reply = await post(
    `${ctx.httpUrl}/api/v1/conversations`,
    { 'x-admin-key': BENCH_ADMIN_KEY },
    { kind: 'group', name: 'bench', members },
  );
  return reply.id as string;
}
