/**
 * capsa's dashboard: hash routes (#/runs, #/runs/ID, #/new, #/modules, #/usage, #/admin,
 * #/admin/system) over the public API. Plain modules, bundled by esbuild: no framework to ship
 * or audit, and the DOM is only ever built from text nodes (dom.ts).
 */
import './app.css';
import { session } from './api.js';
import { h, replace } from './dom.js';
import { loginView } from './views/login.js';
import { runsView } from './views/runs.js';
import { runView } from './views/run.js';
import { submitView } from './views/submit.js';
import { modulesView, usageView } from './views/tenant.js';
import { adminView, systemView } from './views/admin.js';
import { go, type ViewContext } from './shell.js';

let current: AbortController | undefined;
let onLogin = false;

function nav(): void {
  const el = document.getElementById('nav')!;
  const role = session.role;
  const here = location.hash || '#/runs';
  const link = (href: string, label: string) => h('a', { href, ...(here === href || (href !== '#/admin' && here.startsWith(`${href}/`)) ? { 'aria-current': 'page' } : {}) }, label);
  const out = h('button', { type: 'button', class: 'link', onclick: () => { session.clear(); location.hash = '#/login'; } }, 'Sign out');
  if (role === 'tenant') replace(el, link('#/runs', 'Runs'), link('#/new', 'New run'), link('#/modules', 'Modules'), link('#/usage', 'Usage'), out);
  else if (role === 'admin') replace(el, link('#/admin', 'Tenants'), link('#/admin/system', 'System'), out);
  else replace(el);
}

/** Draws the view the hash names. */
function route(): void {
  current?.abort();
  current = new AbortController();
  const root = document.getElementById('main')!;
  replace(root);
  const hash = location.hash.replace(/^#/, '') || '/runs';
  const ctx: ViewContext = { root, signal: current.signal };
  nav();
  onLogin = !session.token || hash === '/login';
  if (onLogin) return loginView(ctx);
  const role = session.role;
  const parts = hash.split('/').filter(Boolean);
  if (role === 'admin') {
    if (parts[1] === 'system') return void systemView(ctx);
    return void adminView(ctx);
  }
  if (parts[0] === 'runs' && parts[1]) return void runView(ctx, decodeURIComponent(parts[1]));
  if (parts[0] === 'new') return void submitView(ctx);
  if (parts[0] === 'modules') return void modulesView(ctx);
  if (parts[0] === 'usage') return void usageView(ctx);
  return void runsView(ctx);
}

window.addEventListener('hashchange', route);
// A key revoked while the tab is open: back to sign-in (the sign-in form shows its own error).
window.addEventListener('capsa:unauthorized', () => { if (!onLogin) go('#/login'); });
if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', route);
else route();
