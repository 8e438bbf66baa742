import { lazy, Suspense, useEffect, useMemo, useRef, useState } from "react";
import { api, FIRST_SCREEN, type Assertion, type Id, type JobState, type StoredResult, type TargetSpec } from "../api";
import { AggregateTable, Confusion, statsFor } from "../components/Charts";
import { Empty, ErrorNote, fmtTime, useLoad } from "../components/common";
import { Diff } from "../components/Diff";
import { FeedbackBar } from "../components/Feedback";
import { Output } from "../components/Markdown";
import { Matrix, cellStatus, cellText, type MatrixRow } from "../components/Matrix";
import { TargetPicker } from "../components/TargetPicker";

const Charts = lazy(() => import("../components/RunCharts"));

/** Runs: start one, watch it, and read its matrix, aggregates, charts and diffs. */
export function Runs({ runId, go }: { runId: Id | null; go: (path: string) => void }) {
  const runs = useLoad(() => api.runs());
  const [creating, setCreating] = useState(false);
  return (
    <div className="page runs">
      <aside className="sidebar">
        <button className="primary" onClick={() => setCreating(true)}>
          New run
        </button>
        <ErrorNote error={runs.error} onRetry={runs.reload} />
        <ul className="list">
          {(runs.data ?? []).map((r) => (
            <li key={r.id} className={r.id === runId ? "active" : ""}>
              <a
                href={`/runs/${r.id}`}
                onClick={(e) => (e.preventDefault(), setCreating(false), go(`/runs/${r.id}`))}
              >
                <strong>{r.name}</strong> <span className={`badge ${r.status}`}>{r.status}</span>
                <div className="muted">
                  #{r.id} · {r.kind} · {r.results} results · {fmtTime(r.created_at)}
                </div>
              </a>
            </li>
          ))}
        </ul>
      </aside>
      <section className="main">
        {creating ? (
          <NewRun
            onStarted={(id) => {
              setCreating(false);
              runs.reload();
              go(`/runs/${id}`);
            }}
          />
        ) : runId != null ? (
          <RunView key={runId} runId={runId} onChange={runs.reload} />
        ) : (
          <Empty title="No run selected">
            <p>Start a run over a test set with “New run”, or pick one on the left.</p>
          </Empty>
        )}
      </section>
    </div>
  );
}

const ASSERTIONS: { id: string; label: string; make: (v: string) => Assertion }[] = [
  { id: "label", label: "Label equals the expected label", make: () => ({ type: "label-equals-expected" }) },
  { id: "equals", label: "Answer equals the expected answer (ignoring case)", make: () => ({ type: "equals", ignore_case: true }) },
  { id: "contains", label: "Answer contains…", make: (v) => ({ type: "contains", value: v, ignore_case: true }) },
  { id: "latency", label: "Latency at most (ms)…", make: (v) => ({ type: "latency-ms", max: Number(v) }) },
];

function NewRun({ onStarted }: { onStarted: (runId: Id) => void }) {
  const sets = useLoad(() => api.testSets());
  const [name, setName] = useState("run");
  const [set, setSet] = useState("");
  const [template, setTemplate] = useState("{{ text }}");
  const [system, setSystem] = useState("");
  const [targets, setTargets] = useState<TargetSpec[]>([]);
  const [checks, setChecks] = useState<Record<string, string | boolean>>({ label: true });
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    if (!set && sets.data?.length) setSet(sets.data[0].name);
  }, [sets.data, set]);
  const start = async () => {
    const assert = ASSERTIONS.filter((a) => checks[a.id]).map((a) => a.make(String(checks[`${a.id}-value`] ?? "")));
    try {
      const r = await api.startRun({
        name,
        test_set: set,
        prompt: { template, system: system.trim() || undefined },
        targets,
        assert,
      });
      onStarted(r.run_id);
    } catch (e) {
      setError(e);
    }
  };
  if (sets.data && sets.data.length === 0) {
    return (
      <Empty title="No test sets yet">
        <p>Create one on the Test sets page (or save playground inputs as cases), then start a run over it.</p>
      </Empty>
    );
  }
  return (
    <div className="panel new-run">
      <h2>New run</h2>
      <label>
        Name <input value={name} onChange={(e) => setName(e.target.value)} />
      </label>
      <label>
        Test set
        <select value={set} onChange={(e) => setSet(e.target.value)} data-testid="run-test-set">
          {(sets.data ?? []).map((s) => (
            <option key={s.id} value={s.name}>
              {s.name} ({s.cases} cases)
            </option>
          ))}
        </select>
      </label>
      <label>
        Prompt template <span className="muted">(Jinja; a case's variables, e.g. {"{{ text }}"})</span>
        <textarea rows={2} value={template} onChange={(e) => setTemplate(e.target.value)} />
      </label>
      <label>
        System prompt <textarea rows={2} value={system} onChange={(e) => setSystem(e.target.value)} placeholder="Optional" />
      </label>
      <TargetPicker value={targets} onChange={setTargets} />
      <fieldset>
        <legend>Assertions</legend>
        {ASSERTIONS.map((a) => (
          <label key={a.id} className="check">
            <input
              type="checkbox"
              checked={!!checks[a.id]}
              onChange={(e) => setChecks({ ...checks, [a.id]: e.target.checked })}
            />
            {a.label}
            {(a.id === "contains" || a.id === "latency") && (
              <input
                className="inline"
                aria-label={`${a.label} value`}
                value={String(checks[`${a.id}-value`] ?? "")}
                onChange={(e) => setChecks({ ...checks, [`${a.id}-value`]: e.target.value })}
              />
            )}
          </label>
        ))}
      </fieldset>
      <button className="primary" disabled={!set || targets.length === 0} onClick={() => void start()}>
        Start run
      </button>
      <ErrorNote error={error} />
    </div>
  );
}

type Filter = "all" | "failed" | "errors" | "passed" | "disagree";

function RunView({ runId, onChange }: { runId: Id; onChange: () => void }) {
  const info = useLoad(() => api.run(runId), [runId]);
  // The first screenful of results first, then all of them (aggregates and filters need all).
  const first = useLoad(() => api.runResults(runId, FIRST_SCREEN), [runId]);
  const all = useLoad(() => {
    if (!first.data) return new Promise<never>(() => undefined);
    if (first.data.total <= first.data.results.length) return Promise.resolve(first.data);
    // After the first screen is painted: the big answer must not hold it up.
    return new Promise<void>((r) => setTimeout(r, 50)).then(() => api.runResults(runId));
  }, [runId, first.data]);
  const data = { ...all, data: all.data ?? first.data, error: all.error ?? first.error, reload: () => (first.reload(), all.reload()) };
  const complete = all.data != null;
  const cases = useLoad(
    () => (info.data?.test_set_id != null ? api.cases(info.data.test_set_id) : Promise.resolve([])),
    [info.data?.test_set_id],
  );
  const [job, setJob] = useState<JobState | null>(null);
  const [filter, setFilter] = useState<Filter>("all");
  const [text, setText] = useState("");
  const [selected, setSelected] = useState<StoredResult[]>([]);
  const watching = useRef<AbortController | null>(null);

  // A running run started from this UI: find its job and follow it.
  useEffect(() => {
    if (info.data?.status !== "running") return;
    const controller = new AbortController();
    watching.current = controller;
    let timer: ReturnType<typeof setTimeout> | null = null;
    const refresh = () => {
      if (!timer) timer = setTimeout(() => ((timer = null), data.reload()), 500);
    };
    void findJob(runId).then((id) => {
      if (id == null) return;
      void api.watchJob(
        id,
        ({ event, data: d }) => {
          if (event === "state") setJob(d as JobState);
          else if (event === "cell") (setJob((j) => (j ? { ...j, done: j.done + 1 } : j)), refresh());
          else if (["done", "failed", "cancelled"].includes(event)) {
            setJob((j) => (j ? { ...j, status: event as JobState["status"] } : j));
            info.reload();
            data.reload();
            onChange();
          }
        },
        controller.signal,
      );
    });
    return () => controller.abort();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [info.data?.status, runId]);

  const expected = useMemo(() => new Map((cases.data ?? []).map((c) => [c.id, c.expected ?? ""])), [cases.data]);
  const targets = data.data?.targets ?? [];
  const results = data.data?.results ?? [];
  const rows: MatrixRow[] = useMemo(() => {
    const byCase = new Map<string, MatrixRow>();
    for (const r of results) {
      const key = r.case_id != null ? `c${r.case_id}` : `r${r.id}`;
      let row = byCase.get(key);
      if (!row) {
        row = { key, input: r.input, expected: r.case_id != null ? (expected.get(r.case_id) ?? null) : null, cells: targets.map(() => undefined) };
        byCase.set(key, row);
      }
      const t = targets.findIndex((t) => t.id === r.target_id);
      if (t >= 0) row.cells[t] = r;
    }
    return [...byCase.values()];
  }, [results, targets, expected]);
  const shown = useMemo(() => {
    const needle = text.trim().toLowerCase();
    return rows.filter((row) => {
      if (needle && !row.input.toLowerCase().includes(needle) && !row.cells.some((c) => cellText(c).toLowerCase().includes(needle))) return false;
      const statuses = row.cells.map(cellStatus);
      if (filter === "failed") return statuses.includes("fail");
      if (filter === "errors") return statuses.includes("error");
      if (filter === "passed") return statuses.every((s) => s === "pass");
      if (filter === "disagree") return new Set(row.cells.filter(Boolean).map((c) => cellText(c).trim().toLowerCase())).size > 1;
      return true;
    });
  }, [rows, filter, text]);
  const stats = useMemo(() => (complete ? targets.map((t) => statsFor(t, results)) : []), [targets, results, complete]);

  const select = (r: StoredResult) =>
    setSelected((s) => (s.some((x) => x.id === r.id) ? s.filter((x) => x.id !== r.id) : [...s.slice(-1), r]));
  const nameOf = (r: StoredResult) => targets.find((t) => t.id === r.target_id)?.name ?? `target ${r.target_id}`;

  if (info.error || data.error) return <ErrorNote error={info.error ?? data.error} onRetry={() => (info.reload(), data.reload())} />;
  if (!data.data) return <div className="muted">Loading run…</div>;
  const running = info.data?.status === "running";
  return (
    <div className="run-view">
      <header className="run-head">
        <h2>
          {info.data?.name ?? `Run #${runId}`} {info.data && <span className={`badge ${info.data.status}`}>{info.data.status}</span>}
        </h2>
        {running && job && (
          <div className="progress" role="progressbar" aria-valuenow={job.done} aria-valuemax={job.total ?? undefined}>
            <div className="bar" style={{ width: `${job.total ? (100 * job.done) / job.total : 0}%` }} />
            <span>
              {job.done} / {job.total ?? "?"} cells
            </span>
            <button onClick={() => void api.cancelJob(job.id).catch(() => undefined)}>Cancel</button>
          </div>
        )}
      </header>
      {complete ? (
        <>
          <AggregateTable stats={stats} />
          <Suspense fallback={<div className="charts muted">Loading charts…</div>}>
            <Charts stats={stats} />
          </Suspense>
          <div className="confusions">
            {targets.map((t) => (
              <Confusion key={t.id} target={t} results={results} expected={expected} />
            ))}
          </div>
        </>
      ) : (
        <div className="muted" role="status">
          Showing the first {results.length} of {data.data?.total ?? "?"} results; loading the rest for the aggregates…
        </div>
      )}
      <div className="filters">
        {(["all", "failed", "errors", "passed", "disagree"] as Filter[]).map((f) => (
          <button key={f} className={filter === f ? "on" : ""} aria-pressed={filter === f} onClick={() => setFilter(f)}>
            {f === "disagree" ? "targets disagree" : f}
          </button>
        ))}
        <input placeholder="Filter by text…" value={text} onChange={(e) => setText(e.target.value)} aria-label="Filter rows" />
        <span className="muted">
          {shown.length} of {rows.length} cases · click two cells to diff them
        </span>
      </div>
      {rows.length === 0 ? (
        <Empty title={running ? "Waiting for the first results…" : "This run has no results"} />
      ) : (
        <Matrix targets={targets} rows={shown} selected={selected.map((s) => s.id)} onSelect={select} />
      )}
      {selected.length > 0 && (
        <div className="selection">
          {selected.length === 2 && (
            <Diff a={cellText(selected[0])} b={cellText(selected[1])} left={nameOf(selected[0])} right={nameOf(selected[1])} />
          )}
          {selected.map((r) => (
            <article key={r.id} className="answer">
              <header>
                <strong>{nameOf(r)}</strong> <span className="muted">result #{r.id}</span>
              </header>
              <div className="muted">Input: {r.input}</div>
              <Output text={cellText(r)} markdown={false} />
              {(r.meta?.assertions ?? []).map((v, i) => (
                <div key={i} className={v.passed ? "ok" : "error"}>
                  {v.passed ? "✓" : "✗"} {v.assertion} {v.reason}
                </div>
              ))}
              {!r.answer.error && <FeedbackBar resultId={r.id} compact />}
            </article>
          ))}
        </div>
      )}
    </div>
  );
}

/** The job of a running run, if this server started it. */
async function findJob(runId: Id): Promise<number | null> {
  const jobs = await api.jobs().catch(() => []);
  return jobs.find((j) => j.run_id === runId && j.status === "running")?.id ?? null;
}
