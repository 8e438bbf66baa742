// The charts of a run (recharts), in their own chunk: the matrix and the aggregates show first.
import { Bar, BarChart, CartesianGrid, Legend, ResponsiveContainer, Tooltip, XAxis, YAxis } from "recharts";
import type { TargetStats } from "./Charts";

/** Pass rate per target, and each target's latency distribution (histogram). */
export default function RunCharts({ stats }: { stats: TargetStats[] }) {
  const pass = stats.filter((s) => s.passRate != null).map((s) => ({ name: s.target.name, pass: Math.round((s.passRate ?? 0) * 1000) / 10 }));
  const all = stats.flatMap((s) => s.latencies);
  const max = all.length ? all[all.length - 1] : 0;
  const bins = 12;
  const width = max > 0 ? max / bins : 1;
  const histogram = Array.from({ length: bins }, (_, i) => {
    const row: Record<string, number | string> = { range: `${Math.round(i * width)}–${Math.round((i + 1) * width)} ms` };
    for (const s of stats) row[s.target.name] = s.latencies.filter((l) => Math.min(bins - 1, Math.floor(l / width)) === i).length;
    return row;
  });
  const colors = ["#4f7cff", "#ef8a3c", "#39a96b", "#c35bd1", "#d4b93c", "#4cc3d9"];
  return (
    <div className="charts">
      {pass.length > 0 && (
        <figure>
          <figcaption>Pass rate (%)</figcaption>
          <ResponsiveContainer width="100%" height={200}>
            <BarChart data={pass}>
              <CartesianGrid strokeDasharray="3 3" />
              <XAxis dataKey="name" />
              <YAxis domain={[0, 100]} />
              <Tooltip />
              <Bar dataKey="pass" fill="#4f7cff" isAnimationActive={false} />
            </BarChart>
          </ResponsiveContainer>
        </figure>
      )}
      {all.length > 0 && (
        <figure>
          <figcaption>Latency distribution (cells per bin)</figcaption>
          <ResponsiveContainer width="100%" height={200}>
            <BarChart data={histogram}>
              <CartesianGrid strokeDasharray="3 3" />
              <XAxis dataKey="range" tick={{ fontSize: 10 }} />
              <YAxis allowDecimals={false} />
              <Tooltip />
              <Legend />
              {stats.map((s, i) => (
                <Bar key={s.target.id} dataKey={s.target.name} fill={colors[i % colors.length]} isAnimationActive={false} />
              ))}
            </BarChart>
          </ResponsiveContainer>
        </figure>
      )}
    </div>
  );
}

