/**
 * A new run: pick or upload a module, write the manifest (checked as you type by
 * POST /v1/manifests/check, the reader POST /v1/runs uses: problems at line:col), stdin and
 * files; then follow it on its page.
 */
import { api, HttpError, toB64 } from '../api.js';
import { bytes, field, h, notice, replace } from '../dom.js';
import { go, heading, type ViewContext } from '../shell.js';

interface Problem { line: number; col: number; path: string; message: string; policy?: boolean }

/** The text offset of a 1-based line and column. */
function offsetOf(text: string, line: number, col: number): number {
  let off = 0;
  for (let l = 1; l < line; l++) {
    const nl = text.indexOf('\n', off);
    if (nl < 0) return text.length;
    off = nl + 1;
  }
  return Math.min(text.length, off + Math.max(0, col - 1));
}

/** Problems as a list; each moves the cursor to its place in the editor. */
function problemList(problems: Problem[], editor: HTMLTextAreaElement): HTMLElement {
  return h('ul', { class: 'problems' }, problems.map((p) => h('li', {},
    h('button', { type: 'button', class: 'link', onclick: () => {
      const at = offsetOf(editor.value, p.line, p.col);
      editor.focus();
      editor.setSelectionRange(at, at);
    } }, p.line ? `line ${p.line}:${p.col}` : 'manifest'),
    ` ${p.path ? `${p.path}: ` : ''}${p.message}${p.policy ? ' (your policy)' : ''}`)));
}

export async function submitView(ctx: ViewContext): Promise<void> {
  heading(ctx, 'New run');
  const moduleSel = h('select', { name: 'module', required: true }, h('option', { value: '' }, 'Choose a module…'));
  const upload = h('input', { type: 'file', name: 'upload', accept: '.wasm,application/wasm' });
  const uploadStatus = h('div', { 'aria-live': 'polite' });
  const editor = h('textarea', { name: 'manifest', rows: '10', spellcheck: 'false', class: 'code', 'aria-describedby': 'manifest-status' });
  editor.value = 'args: [world]\n';
  const gutter = h('div', { class: 'gutter', 'aria-hidden': 'true' });
  const checkStatus = h('div', { id: 'manifest-status', 'aria-live': 'polite' });
  const stdin = h('textarea', { name: 'stdin', rows: '3', spellcheck: 'false', class: 'code' });
  const audit = h('select', { name: 'audit' }, h('option', { value: 'denied' }, 'refused decisions'), h('option', { value: 'all' }, 'every decision'), h('option', { value: 'off' }, 'none'));
  const files = h('div', { class: 'files' });
  const result = h('div', { 'aria-live': 'polite' });

  const loadModules = async (select?: string): Promise<void> => {
    try {
      const page: { items: { id: string; size: number; createdAt: string }[] } = await api('GET', '/v1/modules?limit=100');
      replace(moduleSel, h('option', { value: '' }, 'Choose a module…'),
        page.items.map((m) => h('option', { value: m.id }, `${m.id.slice(0, 19)}… (${bytes(m.size)}, ${new Date(m.createdAt).toLocaleDateString()})`)));
      if (select) moduleSel.value = select;
      else if (page.items.length === 1) moduleSel.value = page.items[0]!.id;
    } catch (e) {
      uploadStatus.replaceChildren(notice(`Cannot list modules: ${(e as Error).message}`));
    }
  };
  upload.addEventListener('change', async () => {
    const f = upload.files?.[0];
    if (!f) return;
    uploadStatus.replaceChildren(notice(`Uploading ${f.name}…`, 'info'));
    try {
      const m: { id: string } = await api('POST', '/v1/modules', new Uint8Array(await f.arrayBuffer()), 'application/wasm');
      await loadModules(m.id);
      uploadStatus.replaceChildren(notice(`Uploaded ${f.name} as ${m.id}`, 'info'));
    } catch (e) {
      uploadStatus.replaceChildren(notice(`${f.name}: ${(e as Error).message}`));
    }
  });

  // Line numbers beside the editor, the lines with problems marked.
  const drawGutter = (problems: Problem[]): void => {
    const n = editor.value.split('\n').length;
    const at = (line: number) => problems.filter((p) => p.line === line).map((p) => `${p.path ? `${p.path}: ` : ''}${p.message}`).join('\n');
    replace(gutter, Array.from({ length: n }, (_, i) => {
      const why = at(i + 1);
      return h('div', why ? { class: 'bad', title: why } : {}, String(i + 1));
    }));
    gutter.scrollTop = editor.scrollTop;
  };
  editor.addEventListener('scroll', () => { gutter.scrollTop = editor.scrollTop; });
  let timer: number | undefined;
  let generation = 0;
  const check = async (): Promise<void> => {
    const mine = ++generation;
    let r: { valid: boolean; problems: Problem[]; grants?: { dirs: { guest: string; rights: string[] }[]; casper: string[]; limits: Record<string, number> } };
    try {
      r = await api('POST', '/v1/manifests/check', { manifest: editor.value });
    } catch (e) {
      if (mine === generation) checkStatus.replaceChildren(notice(`Cannot check the manifest: ${(e as Error).message}`));
      return;
    }
    if (mine !== generation || ctx.signal.aborted) return;
    editor.setAttribute('aria-invalid', String(!r.valid));
    drawGutter(r.problems);
    if (r.valid) {
      const g = r.grants!;
      checkStatus.replaceChildren(h('p', { class: 'ok' }, '✓ Valid. ',
        g.dirs.length ? `Directories: ${g.dirs.map((d) => `${d.guest} (${d.rights.join(', ')})`).join('; ')}. ` : 'No directories. ',
        g.casper.length ? `Casper: ${g.casper.join(', ')}.` : ''));
    } else {
      replace(checkStatus, h('p', { class: 'bad' }, `✕ ${r.problems.length} problem${r.problems.length === 1 ? '' : 's'}:`), problemList(r.problems, editor));
    }
  };
  editor.addEventListener('input', () => {
    drawGutter([]);
    clearTimeout(timer);
    timer = window.setTimeout(() => void check(), 250);
  });

  const addFile = (): void => {
    const p = h('input', { type: 'text', name: 'file-path', placeholder: '/data/in.txt', spellcheck: 'false' });
    const content = h('input', { type: 'file', name: 'file-content' });
    const row = h('div', { class: 'file-row' }, field('Guest path', p), field('Content', content),
      h('button', { type: 'button', class: 'link', onclick: () => row.remove() }, 'Remove'));
    files.append(row);
    p.focus();
  };

  const form = h('form', { class: 'card', onsubmit: async (ev: Event) => {
    ev.preventDefault();
    result.replaceChildren();
    const body: Record<string, unknown> = { manifest: editor.value, audit: audit.value };
    if (moduleSel.value) body['module'] = moduleSel.value;
    if (stdin.value) body['stdin'] = stdin.value;
    const filesBase64: Record<string, string> = {};
    for (const row of Array.from(files.querySelectorAll('.file-row'))) {
      const p = (row.querySelector('input[name=file-path]') as HTMLInputElement).value.trim();
      const f = (row.querySelector('input[name=file-content]') as HTMLInputElement).files?.[0];
      if (p) filesBase64[p] = f ? toB64(new Uint8Array(await f.arrayBuffer())) : '';
    }
    if (Object.keys(filesBase64).length) body['filesBase64'] = filesBase64;
    try {
      const run: { id: string } = await api('POST', '/v1/runs', body);
      go(`#/runs/${encodeURIComponent(run.id)}`);
    } catch (e) {
      const details = e instanceof HttpError && Array.isArray(e.details) ? e.details as Problem[] : [];
      const placed = details.filter((d) => typeof d.line === 'number');
      replace(result, notice((e as Error).message.split('\n')[0]!), placed.length ? problemList(placed, editor) : null);
    }
  } },
  h('fieldset', {}, h('legend', {}, 'Module'), field('Your modules', moduleSel), field('Or upload a .wasm', upload, 'Stored per tenant, content-addressed'), uploadStatus),
  h('fieldset', {}, h('legend', {}, 'Manifest'),
    h('label', { for: 'manifest' }, 'Manifest (YAML)'),
    h('div', { class: 'editor' }, gutter, Object.assign(editor, { id: 'manifest' })), checkStatus),
  h('fieldset', {}, h('legend', {}, 'Input'), field('Standard input', stdin),
    h('p', { class: 'hint' }, 'Files the guest finds in its in-memory directories:'), files,
    h('button', { type: 'button', onclick: addFile }, 'Add a file'), field('Record capability decisions', audit)),
  h('button', { type: 'submit', class: 'primary' }, 'Run'), result);
  ctx.root.append(form);
  drawGutter([]);
  await Promise.all([loadModules(), check()]);
}
