/**
 * A few Prometheus metrics written by hand: the exposition format is a page of text and the
 * service needs counters, gauges and two histograms, so prom-client (and its default process
 * collectors) would be one more dependency for little.
 */

/** A cumulative histogram with fixed buckets (seconds). */
export class Histogram {
  readonly counts: number[];
  sum = 0;
  count = 0;
  constructor(readonly buckets: readonly number[]) {
    this.counts = buckets.map(() => 0);
  }
  observe(v: number): void {
    this.sum += v;
    this.count++;
    for (let i = 0; i < this.buckets.length; i++) if (v <= this.buckets[i]!) this.counts[i]!++;
  }
}

export const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

const esc = (v: string) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
const labels = (l: Record<string, string>) => {
  const parts = Object.entries(l).map(([k, v]) => `${k}="${esc(v)}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
};
const num = (v: number) => (Number.isFinite(v) ? String(v) : v > 0 ? '+Inf' : v < 0 ? '-Inf' : 'NaN');

/** Builds the text exposition (version 0.0.4). */
export class Exposition {
  private lines: string[] = [];
  /** `base` labels go on every sample (a node's id, so that nodes' figures stay apart when summed). */
  constructor(private readonly base: Record<string, string> = {}) {}
  metric(name: string, type: 'counter' | 'gauge', help: string, samples: [Record<string, string>, number][]): this {
    this.lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [l, v] of samples) this.lines.push(`${name}${labels({ ...this.base, ...l })} ${num(v)}`);
    return this;
  }
  histogram(name: string, help: string, h: Histogram): this {
    this.lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} histogram`);
    h.buckets.forEach((b, i) => this.lines.push(`${name}_bucket${labels({ ...this.base, le: String(b) })} ${h.counts[i]}`));
    this.lines.push(`${name}_bucket${labels({ ...this.base, le: '+Inf' })} ${h.count}`, `${name}_sum${labels(this.base)} ${h.sum}`, `${name}_count${labels(this.base)} ${h.count}`);
    return this;
  }
  toString(): string {
    return this.lines.join('\n') + '\n';
  }
}
