/**
 * The public API from the page: the key or admin token lives in sessionStorage (this tab only),
 * goes out in the Authorization header and nowhere else (never a URL, never a log line).
 */
export type Role = 'tenant' | 'admin';

const KEY = 'capsa.token';
const ROLE = 'capsa.role';

export const session = {
  get token(): string | null { return sessionStorage.getItem(KEY); },
  get role(): Role | null { return sessionStorage.getItem(ROLE) as Role | null; },
  set(token: string, role: Role): void { sessionStorage.setItem(KEY, token); sessionStorage.setItem(ROLE, role); },
  clear(): void { sessionStorage.removeItem(KEY); sessionStorage.removeItem(ROLE); },
};

/** An answer that is not a success: its status, code, message and details. */
export class HttpError extends Error {
  constructor(readonly status: number, readonly code: string, message: string, readonly details?: unknown) {
    super(message);
  }
}

function headers(extra: Record<string, string> = {}): Record<string, string> {
  const token = session.token;
  return { ...(token ? { authorization: `Bearer ${token}` } : {}), ...extra };
}

async function fail(r: Response): Promise<never> {
  let body: { error?: { code?: string; message?: string; details?: unknown } } = {};
  try { body = await r.json(); } catch { /* not JSON */ }
  throw new HttpError(r.status, body.error?.code ?? 'http_error', body.error?.message ?? `${r.status} ${r.statusText}`, body.error?.details);
}

/** A JSON request; throws HttpError for anything but 2xx. */
export async function api<T = any>(method: string, path: string, body?: unknown, type = 'application/json'): Promise<T> {
  const init: RequestInit = { method, headers: headers(body === undefined ? {} : { 'content-type': type }), cache: 'no-store' };
  if (body !== undefined) init.body = type === 'application/json' ? JSON.stringify(body) : body as BodyInit;
  const r = await fetch(path, init);
  if (r.status === 401 && session.token) {
    // The key was revoked (or the server's token changed) while the tab was open: sign in again.
    session.clear();
    window.dispatchEvent(new Event('capsa:unauthorized'));
  }
  if (!r.ok) return fail(r);
  if (r.status === 204) return undefined as T;
  const ct = r.headers.get('content-type') ?? '';
  return (ct.includes('json') && !ct.includes('ndjson') ? r.json() : r.text()) as Promise<T>;
}

/** A text resource that needs no key (/metrics). */
export async function text(path: string): Promise<string> {
  const r = await fetch(path, { headers: headers(), cache: 'no-store' });
  if (!r.ok) return fail(r);
  return r.text();
}

export interface SseEvent { id: string; event: string; data: string }

/**
 * A run's Server-Sent Events, read with fetch (EventSource cannot send the Authorization header).
 * Reconnects with Last-Event-ID after a dropped connection, until `exit` or the signal aborts.
 */
export async function streamEvents(runId: string, onEvent: (e: SseEvent) => void, signal: AbortSignal): Promise<void> {
  let last = '';
  for (let tries = 0; !signal.aborted; tries++) {
    let ended = false;
    try {
      const r = await fetch(`/v1/runs/${encodeURIComponent(runId)}/events`, { headers: headers(last ? { 'last-event-id': last } : {}), signal, cache: 'no-store' });
      if (!r.ok) return fail(r);
      const reader = r.body!.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        buf += value;
        let i: number;
        while ((i = buf.search(/\r?\n\r?\n/)) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i).replace(/^\r?\n\r?\n/, '');
          const e: SseEvent = { id: '', event: 'message', data: '' };
          const data: string[] = [];
          for (const line of block.split(/\r?\n/)) {
            if (line.startsWith(':')) continue;
            const c = line.indexOf(':');
            const k = c < 0 ? line : line.slice(0, c);
            const v = c < 0 ? '' : line.slice(c + 1).replace(/^ /, '');
            if (k === 'event') e.event = v;
            else if (k === 'id') e.id = v;
            else if (k === 'data') data.push(v);
          }
          if (data.length === 0 && e.event === 'message') continue;
          e.data = data.join('\n');
          if (e.id) last = e.id;
          onEvent(e);
          if (e.event === 'exit') ended = true;
        }
      }
      if (ended) return;
    } catch (e) {
      if (signal.aborted || e instanceof HttpError) throw e;
    }
    // Dropped before `exit`: wait a little, longer each time, and resume after the last event.
    await new Promise((res) => setTimeout(res, Math.min(5000, 250 * 2 ** Math.min(tries, 5))));
  }
}

/** Base64 to bytes. */
export function fromB64(s: string): Uint8Array {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** Bytes to base64. */
export function toB64(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}
