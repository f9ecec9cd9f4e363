// Formatting the server's `codeparrot/stats` result for a quick pick. Pure, unit-tested.

export interface StageStats {
  p50?: number;
  p95?: number;
  p99?: number;
  count?: number;
}

export interface AcceptanceCounts {
  shown?: number;
  accepted?: number;
  partial?: number;
  typed_through?: number;
  accept_rate?: number | null;
}

export interface Acceptance {
  by_source?: Record<string, AcceptanceCounts>;
  by_lines?: Record<string, AcceptanceCounts>;
  copies_by_file?: (AcceptanceCounts & { file?: string })[];
  log?: string | null;
}

export interface ServerStats {
  acceptance?: Acceptance;
  requests?: number;
  cancelled?: number;
  cache_hits?: number;
  last?: { prompt_tokens?: number; prompt_tokens_computed?: number; new_tokens?: number };
  stages_ms?: Record<string, StageStats>;
}

export interface StatsLine {
  label: string;
  description: string;
}

export const STATS_METHOD = "codeparrot/stats";

function num(v: unknown): string {
  return typeof v === "number" && Number.isFinite(v) ? String(Math.round(v * 10) / 10) : "–";
}

export function formatStats(raw: unknown): StatsLine[] {
  if (typeof raw !== "object" || raw === null) {
    return [{ label: "No statistics", description: `server answered ${JSON.stringify(raw)}` }];
  }
  const s = raw as ServerStats;
  const lines: StatsLine[] = [
    {
      label: "Requests",
      description: `${num(s.requests)} total, ${num(s.cancelled)} cancelled, ${num(s.cache_hits)} cache hits`,
    },
  ];
  if (s.last) {
    lines.push({
      label: "Last request",
      description:
        `${num(s.last.prompt_tokens)} prompt tokens (${num(s.last.prompt_tokens_computed)} computed), ` +
        `${num(s.last.new_tokens)} new tokens`,
    });
  }
  lines.push(...acceptanceLines(s.acceptance));
  for (const [stage, t] of Object.entries(s.stages_ms ?? {})) {
    lines.push({
      label: `Stage ${stage}`,
      description: `p50 ${num(t.p50)} ms · p95 ${num(t.p95)} ms · p99 ${num(t.p99)} ms` +
        (t.count !== undefined ? ` · ${num(t.count)} runs` : ""),
    });
  }
  return lines;
}

function rate(c: AcceptanceCounts): string {
  const r = c.accept_rate;
  return typeof r === "number" && Number.isFinite(r) ? `${Math.round(r * 1000) / 10} %` : "–";
}

function accepted(c: AcceptanceCounts): string {
  const extra = [
    c.partial ? `${num(c.partial)} partly` : "",
    c.typed_through ? `${num(c.typed_through)} typed through` : "",
  ].filter((x) => x !== "");
  return `${num(c.accepted ?? 0)} of ${num(c.shown ?? 0)} accepted (${rate(c)})` + (extra.length ? `, ${extra.join(", ")}` : "");
}

/** Shown / accepted per source, per single- or multi-line, and per file copies came from. */
export function acceptanceLines(a: Acceptance | undefined): StatsLine[] {
  if (a === undefined) return [];
  const lines: StatsLine[] = [];
  for (const [source, c] of Object.entries(a.by_source ?? {})) {
    lines.push({ label: `Accepted: ${source}`, description: accepted(c) });
  }
  for (const [kind, c] of Object.entries(a.by_lines ?? {})) {
    if (c.shown) lines.push({ label: `Accepted: ${kind}-line`, description: accepted(c) });
  }
  for (const c of a.copies_by_file ?? []) {
    if (c.file !== undefined) lines.push({ label: `Copied from ${c.file}`, description: accepted(c) });
  }
  lines.push({
    label: "Acceptance log",
    description: a.log ? `${a.log} (local only)` : "off: counts stay in the server's memory, nothing is written or sent",
  });
  return lines;
}
