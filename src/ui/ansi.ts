/**
 * ANSI colours of guest output, rendered safely: SGR sequences (ESC [ … m) become CSS classes on
 * text spans; every other escape sequence is dropped; the text itself is only ever a text node.
 */
import { h } from './dom.js';

interface Style { fg?: number; bg?: number; bold?: boolean; dim?: boolean; italic?: boolean; underline?: boolean }

// CSI sequences (any final byte), OSC sequences (to BEL or ST), and lone two-byte escapes.
const ESCAPES = /\x1b\[([0-9;?]*)([@-~])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]/g;

function apply(style: Style, params: string): Style {
  const s: Style = { ...style };
  const codes = params === '' ? [0] : params.split(';').map((p) => Number(p) || 0);
  for (let i = 0; i < codes.length; i++) {
    const c = codes[i]!;
    if (c === 0) { for (const k of Object.keys(s)) delete s[k as keyof Style]; }
    else if (c === 1) s.bold = true;
    else if (c === 2) s.dim = true;
    else if (c === 3) s.italic = true;
    else if (c === 4) s.underline = true;
    else if (c === 22) { delete s.bold; delete s.dim; }
    else if (c === 23) delete s.italic;
    else if (c === 24) delete s.underline;
    else if (c >= 30 && c <= 37) s.fg = c - 30;
    else if (c >= 90 && c <= 97) s.fg = c - 90 + 8;
    else if (c === 39) delete s.fg;
    else if (c >= 40 && c <= 47) s.bg = c - 40;
    else if (c >= 100 && c <= 107) s.bg = c - 100 + 8;
    else if (c === 49) delete s.bg;
    else if (c === 38 || c === 48) {
      // 256-colour and true-colour forms: only the 16 base colours are shown, the rest skipped.
      const mode = codes[i + 1];
      const n = codes[i + 2];
      if (mode === 5 && n !== undefined && n < 16) s[c === 38 ? 'fg' : 'bg'] = n;
      i += mode === 5 ? 2 : mode === 2 ? 4 : 1;
    }
  }
  return s;
}

const classes = (s: Style): string => [
  s.fg !== undefined ? `fg${s.fg}` : '', s.bg !== undefined ? `bg${s.bg}` : '',
  s.bold ? 'b' : '', s.dim ? 'dim' : '', s.italic ? 'i' : '', s.underline ? 'u' : '',
].filter(Boolean).join(' ');

/** Renders text with ANSI escapes into `into`, carrying the style across calls (streamed chunks). */
export class AnsiWriter {
  private style: Style = {};
  private carry = '';
  constructor(private readonly into: HTMLElement) {}

  write(text: string): void {
    text = this.carry + text;
    this.carry = '';
    // An escape cut at the chunk's end waits for the next chunk.
    const cut = text.lastIndexOf('\x1b');
    if (cut >= 0 && cut > text.length - 32 && !/^\x1b(\[[0-9;?]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[@-Z\\-_])/.test(text.slice(cut))) {
      this.carry = text.slice(cut);
      text = text.slice(0, cut);
    }
    let last = 0;
    for (const m of text.matchAll(ESCAPES)) {
      this.emit(text.slice(last, m.index));
      if (m[2] === 'm') this.style = apply(this.style, m[1] ?? '');
      last = m.index + m[0].length;
    }
    this.emit(text.slice(last));
  }

  private emit(text: string): void {
    if (!text) return;
    const cls = classes(this.style);
    const prev = this.into.lastChild;
    if (!cls && prev?.nodeType === Node.TEXT_NODE) (prev as Text).appendData(text);
    else this.into.appendChild(cls ? h('span', { class: cls }, text) : document.createTextNode(text));
  }
}
