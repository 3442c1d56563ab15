/** `capsa completion bash|zsh|fish`: shell completion scripts for the commands and their options. */
import { UsageError } from './flags.js';

/** The commands and the options each takes (kept beside the help texts' option lists). */
export const COMPLETION_WORDS: Record<string, string[]> = {
  run: ['--manifest', '--policy', '--casper-config', '--argdata', '--dir', '--env', '--timeout', '--cpu', '--memory',
    '--output-limit', '--invoke', '--audit', '--audit-file', '--json', '--json-file', '--help'],
  manifest: ['check', 'from-flags', '--policy', '--help'],
  serve: ['--host', '--port', '--data', '--policy', '--executors', '--workers', '--isolation', '--executor-runtime', '--grace', '--help'],
  tenant: ['create', 'list', 'add-key', 'keys', 'revoke-key', 'set-policy', '--data', '--json', '--clear', '--help'],
  completion: ['bash', 'zsh', 'fish'],
};
const TOP = [...Object.keys(COMPLETION_WORDS), '--help', '--version'];

function bash(): string {
  const cases = Object.entries(COMPLETION_WORDS).map(([c, w]) => `    ${c}) words="${w.join(' ')}" ;;`).join('\n');
  return `# capsa bash completion: source <(capsa completion bash)
_capsa() {
  local cur=\${COMP_WORDS[COMP_CWORD]} words
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=($(compgen -W "${TOP.join(' ')}" -- "$cur")); return
  fi
  case \${COMP_WORDS[1]} in
${cases}
    *) words="" ;;
  esac
  if [[ $cur == -* || -z $cur && \${COMP_WORDS[1]} != run ]]; then
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
  else
    COMPREPLY=($(compgen -f -- "$cur"))
  fi
}
complete -o filenames -F _capsa capsa
`;
}

function zsh(): string {
  const cases = Object.entries(COMPLETION_WORDS).map(([c, w]) => `    ${c}) compadd -- ${w.join(' ')}; _files ;;`).join('\n');
  return `#compdef capsa
# capsa zsh completion: source <(capsa completion zsh), or save as _capsa in your $fpath
_capsa() {
  if (( CURRENT == 2 )); then compadd -- ${TOP.join(' ')}; return; fi
  case $words[2] in
${cases}
    *) _files ;;
  esac
}
compdef _capsa capsa
`;
}

function fish(): string {
  const lines = [`# capsa fish completion: capsa completion fish | source`,
    `complete -c capsa -n __fish_use_subcommand -f -a '${Object.keys(COMPLETION_WORDS).join(' ')}'`,
    `complete -c capsa -n __fish_use_subcommand -l help -l version`];
  for (const [c, w] of Object.entries(COMPLETION_WORDS)) {
    const subs = w.filter((x) => !x.startsWith('-'));
    const opts = w.filter((x) => x.startsWith('--')).map((x) => `-l ${x.slice(2)}`);
    if (subs.length) lines.push(`complete -c capsa -n '__fish_seen_subcommand_from ${c}' -f -a '${subs.join(' ')}'`);
    if (opts.length) lines.push(`complete -c capsa -n '__fish_seen_subcommand_from ${c}' ${opts.join(' ')}`);
  }
  return lines.join('\n') + '\n';
}

const SHELLS: Record<string, () => string> = { bash, zsh, fish };

export const COMPLETION_HELP = `Usage: capsa completion bash|zsh|fish

Prints a completion script for the shell:
  bash   source <(capsa completion bash)        (or save it in ~/.local/share/bash-completion/completions/capsa)
  zsh    source <(capsa completion zsh)
  fish   capsa completion fish | source          (or save it in ~/.config/fish/completions/capsa.fish)`;

/** Runs `capsa completion SHELL`; returns the exit status. */
export function completion(argv: string[]): number {
  const [shell, ...extra] = argv;
  if (shell === '--help' || shell === '-h') { process.stdout.write(COMPLETION_HELP + '\n'); return 0; }
  const make = shell === undefined ? undefined : SHELLS[shell];
  if (!make || extra.length) throw new UsageError(`completion: expected bash, zsh or fish\n\n${COMPLETION_HELP}`);
  process.stdout.write(make());
  return 0;
}
