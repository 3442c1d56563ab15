/** What every view shares: its context, its heading, and navigation. */
import { h } from './dom.js';

/** What a view gets: where to draw, and a signal that aborts when the user leaves it. */
export interface ViewContext { root: HTMLElement; signal: AbortSignal }

/** Goes to a hash route; the same route again is drawn again. */
export function go(hash: string): void {
  if (location.hash === hash) window.dispatchEvent(new HashChangeEvent('hashchange'));
  else location.hash = hash;
}

/** Sets the page title and moves focus to the view's heading (keyboard and screen-reader users). */
export function heading(ctx: ViewContext, text: string): HTMLElement {
  document.title = `${text} · capsa`;
  const el = h('h1', { tabindex: '-1' }, text);
  ctx.root.append(el);
  el.focus({ preventScroll: true });
  return el;
}
