import type { StoredResult, TargetRow } from "../api";
import { fmtCost, fmtMs } from "./common";

export interface TargetStats {
  target: TargetRow;
  cells: number;
  errors: number;
  passed: number;
  failed: number;
  passRate: number | null;
  meanMs: number | null;
  p95Ms: number | null;
  tokensOut: number;
  cost: number | null;
  latencies: number[];
}

export function statsFor(target: TargetRow, results: StoredResult[]): TargetStats {
  const mine = results.filter((r) => r.target_id === target.id);
  const latencies = mine.map((r) => r.answer.latency_ms).filter((x): x is number => x != null).sort((a, b) => a - b);
  const passed = mine.filter((r) => r.meta?.passed === true).length;
  const failed = mine.filter((r) => r.meta?.passed === false).length;
  const costs = mine.map((r) => r.answer.cost_usd).filter((x): x is number => x != null);
  return {
    target,
    cells: mine.length,
    errors: mine.filter((r) => r.answer.error).length,
    passed,
    failed,
    passRate: passed + failed > 0 ? passed / (passed + failed) : null,
    meanMs: latencies.length ? latencies.reduce((a, b) => a + b, 0) / latencies.length : null,
    p95Ms: latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * 0.95))] : null,
    tokensOut: mine.reduce((a, r) => a + (r.answer.tokens_out ?? 0), 0),
    cost: costs.length ? costs.reduce((a, b) => a + b, 0) : null,
    latencies,
  };
}

export function AggregateTable({ stats }: { stats: TargetStats[] }) {
  return (
    <table className="aggregates">
      <thead>
        <tr>
          <th>Target</th>
          <th>Cells</th>
          <th>Pass rate</th>
          <th>Errors</th>
          <th>Mean latency</th>
          <th>p95 latency</th>
          <th>Tokens out</th>
          <th>Cost</th>
        </tr>
      </thead>
      <tbody>
        {stats.map((s) => (
          <tr key={s.target.id}>
            <td>
              {s.target.name} <span className="muted">{s.target.kind}</span>
            </td>
            <td>{s.cells}</td>
            <td>{s.passRate == null ? "–" : `${(s.passRate * 100).toFixed(1)}% (${s.passed}/${s.passed + s.failed})`}</td>
            <td>{s.errors}</td>
            <td>{fmtMs(s.meanMs)}</td>
            <td>{fmtMs(s.p95Ms)}</td>
            <td>{s.tokensOut}</td>
            <td>{fmtCost(s.cost, s.target.kind === "local")}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** Expected label × given label counts for one target, with accuracy. */
export function Confusion({ target, results, expected }: { target: TargetRow; results: StoredResult[]; expected: Map<number, string> }) {
  const pairs = results
    .filter((r) => r.target_id === target.id && r.case_id != null && expected.has(r.case_id))
    .map((r) => [expected.get(r.case_id as number) as string, (r.answer.label ?? r.answer.output ?? "").trim()] as const)
    .filter(([, got]) => got.length > 0 && got.length <= 40);
  if (pairs.length === 0) return null;
  const labels = [...new Set(pairs.flatMap(([a, b]) => [a, b]))].sort();
  const count = (a: string, b: string) => pairs.filter(([x, y]) => x === a && y === b).length;
  const right = pairs.filter(([a, b]) => a.toLowerCase() === b.toLowerCase()).length;
  return (
    <figure className="confusion">
      <figcaption>
        {target.name}: accuracy {((right / pairs.length) * 100).toFixed(1)}% over {pairs.length} labelled cases (rows: expected,
        columns: answered)
      </figcaption>
      <table>
        <thead>
          <tr>
            <th />
            {labels.map((l) => (
              <th key={l}>{l}</th>
            ))}
          </tr>
        </thead>
        <tbody>
          {labels.map((a) => (
            <tr key={a}>
              <th>{a}</th>
              {labels.map((b) => {
                const n = count(a, b);
                return (
                  <td key={b} className={n === 0 ? "zero" : a === b ? "diag" : "off"}>
                    {n}
                  </td>
                );
              })}
            </tr>
          ))}
        </tbody>
      </table>
    </figure>
  );
}
