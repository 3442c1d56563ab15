/** A small HTML page of the API, rendered from the OpenAPI document (no scripts, nothing from a CDN). */

const esc = (s: unknown): string => String(s ?? '').replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);

interface Operation {
  summary?: string;
  description?: string;
  tags?: string[];
  security?: Record<string, unknown>[];
  parameters?: { name: string; in: string; required?: boolean; description?: string }[];
  requestBody?: { content?: Record<string, unknown> };
  responses?: Record<string, { description?: string }>;
}

interface Doc {
  info: { title: string; version: string; description?: string };
  paths?: Record<string, Record<string, Operation>>;
}

const METHODS = ['get', 'post', 'put', 'patch', 'delete'];

export function renderDocs(document: unknown): string {
  const doc = document as Doc;
  const ops: { method: string; path: string; op: Operation }[] = [];
  for (const [path, item] of Object.entries(doc.paths ?? {})) {
    for (const m of METHODS) if (item[m]) ops.push({ method: m, path, op: item[m]! });
  }
  const sections = new Map<string, typeof ops>();
  for (const o of ops) {
    const tag = o.op.tags?.[0] ?? 'other';
    sections.set(tag, [...(sections.get(tag) ?? []), o]);
  }
  const auth = (op: Operation) => {
    const s = op.security ?? [];
    if (s.some((x) => 'AdminBearer' in x)) return 'admin token';
    if (s.some((x) => 'Bearer' in x)) return 'API key';
    return 'none';
  };
  const body = [...sections].map(([tag, list]) => `<h2>${esc(tag)}</h2>\n` + list.map(({ method, path, op }) => `
<section id="${esc(`${method}-${path}`)}">
  <h3><code class="m">${esc(method.toUpperCase())}</code> <code>${esc(path)}</code></h3>
  <p>${esc(op.summary)}</p>
  ${op.description ? `<p class="d">${esc(op.description)}</p>` : ''}
  <p class="d">Authentication: ${esc(auth(op))}</p>
  ${op.parameters?.length ? `<p class="d">Parameters: ${op.parameters.map((p) => `<code>${esc(p.name)}</code> (${esc(p.in)}${p.required ? ', required' : ''})${p.description ? ` ${esc(p.description)}` : ''}`).join('; ')}</p>` : ''}
  ${op.requestBody?.content ? `<p class="d">Body: ${Object.keys(op.requestBody.content).map((t) => `<code>${esc(t)}</code>`).join(', ')}</p>` : ''}
  <ul>${Object.entries(op.responses ?? {}).map(([code, r]) => `<li><code>${esc(code)}</code> ${esc(r.description)}</li>`).join('')}</ul>
</section>`).join('\n')).join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(doc.info.title)} API</title>
<style>body{font:15px/1.45 system-ui,sans-serif;max-width:60em;margin:2em auto;padding:0 1em;color:#222}
code{font-family:ui-monospace,monospace}.m{font-weight:bold}section{border-top:1px solid #ddd;padding:.4em 0}
.d{color:#555;margin:.2em 0}ul{margin:.2em 0}</style></head>
<body><h1>${esc(doc.info.title)} API ${esc(doc.info.version)}</h1>
<p>${esc(doc.info.description)}</p>
<p>Machine-readable: <a href="/openapi.json">/openapi.json</a>. ${ops.length} routes.</p>
${body}
</body></html>`;
}
