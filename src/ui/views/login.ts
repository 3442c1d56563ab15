/** Sign-in: a tenant's API key or the admin token, kept for this tab only. */
import { api, HttpError, session, type Role } from '../api.js';
import { field, h, notice } from '../dom.js';
import { go, heading, type ViewContext } from '../shell.js';

export function loginView(ctx: ViewContext): void {
  heading(ctx, 'Sign in');
  const token = h('input', { type: 'password', name: 'token', autocomplete: 'off', required: true, spellcheck: 'false' });
  const role = h('select', { name: 'role' }, h('option', { value: 'tenant' }, 'Tenant (API key)'), h('option', { value: 'admin' }, 'Operator (admin token)'));
  const status = h('div', { 'aria-live': 'polite' });
  const form = h('form', { class: 'card narrow', onsubmit: async (ev: Event) => {
    ev.preventDefault();
    const r = role.value as Role;
    session.set(token.value.trim(), r);
    status.replaceChildren();
    try {
      // Checked once, against a route the role may call.
      await api('GET', r === 'admin' ? '/v1/admin/tenants' : '/v1/limits');
      go(r === 'admin' ? '#/admin' : '#/runs');
    } catch (e) {
      session.clear();
      status.append(notice(e instanceof HttpError && e.status === 401 ? `Not signed in: ${e.message}` : `Cannot reach the service: ${(e as Error).message}`));
    }
  } },
  field('Key or token', token, 'Kept in this browser tab only (sessionStorage), sent as a header, never in a URL.'),
  field('As', role),
  h('button', { type: 'submit' }, 'Sign in'),
  status);
  ctx.root.append(form);
  token.focus();
}
