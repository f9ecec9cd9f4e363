// Formatting the server's `codeparrot/stats` result for a quick pick. Pure, unit-tested.

export interface StageStats {
  p50?: number;
  p95?: number;
  p99?: number;
  count?: number;
}

export interface ServerStats {
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
  for (const [stage, t] of Object.entries(s.stages_ms ?? {})) {
    lines.push({
      label: `Stage ${stage}`,
      description: `p50 ${num(t.p50)} ms · p95 ${num(t.p95)} ms · p99 ${num(t.p99)} ms` +
        (t.count !== undefined ? ` · ${num(t.count)} runs` : ""),
    });
  }
  return lines;
}
