import { useEffect, useRef, useState } from "react";
import { api, type CellReport, type Id, type StoredResult, type Summary, type TargetSpec } from "../api";
import { ErrorNote, fmtCost, fmtMs, useLoad } from "../components/common";
import { FeedbackBar } from "../components/Feedback";
import { Output } from "../components/Markdown";
import { TargetPicker, targetKey } from "../components/TargetPicker";

interface Column {
  target: TargetSpec;
  text: string;
  result: StoredResult | null;
  error: string | null;
  local: boolean;
}

const STORE = "benchtop.playground";

/** One input → several targets side by side, streamed, with feedback under each answer. */
export function Playground() {
  const saved = restore();
  const [input, setInput] = useState(saved.input ?? "");
  const [system, setSystem] = useState(saved.system ?? "");
  const [targets, setTargets] = useState<TargetSpec[]>(saved.targets ?? []);
  const [temperature, setTemperature] = useState(saved.temperature ?? 0);
  const [maxTokens, setMaxTokens] = useState(saved.maxTokens ?? 256);
  const [markdown, setMarkdown] = useState(true);
  const [columns, setColumns] = useState<Column[]>([]);
  const [running, setRunning] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [asked, setAsked] = useState("");
  const abort = useRef<AbortController | null>(null);

  useEffect(() => {
    localStorage.setItem(STORE, JSON.stringify({ input, system, targets, temperature, maxTokens }));
  }, [input, system, targets, temperature, maxTokens]);

  const run = async () => {
    if (!input.trim() || targets.length === 0 || running) return;
    const spec = {
      name: "playground",
      input,
      prompt: system.trim() ? { system } : undefined,
      targets: targets.map((t) => ({ ...t, temperature, max_tokens: maxTokens })),
    };
    const cols: Column[] = targets.map((t) => ({ target: t, text: "", result: null, error: null, local: !t.provider }));
    setColumns(cols);
    setAsked(input);
    setError(null);
    setRunning(true);
    const controller = new AbortController();
    abort.current = controller;
    try {
      await api.playground(
        spec,
        ({ event, data }) => {
          if (event === "text") {
            const d = data as { target: number; delta: string };
            setColumns((c) => c.map((col, i) => (i === d.target ? { ...col, text: col.text + d.delta } : col)));
          } else if (event === "cell") {
            const d = data as CellReport;
            if (d.error) {
              setColumns((c) => c.map((col) => (displayName(col.target) === d.target ? { ...col, error: d.error } : col)));
            }
          } else if (event === "done") {
            const d = data as { summary: Summary; results: StoredResult[] };
            setColumns((c) =>
              c.map((col, i) => {
                const id = d.summary.targets[i]?.target_id;
                const result = d.results.find((r) => r.target_id === id) ?? null;
                return { ...col, result, error: result?.answer.error ?? col.error };
              }),
            );
          } else if (event === "failed") {
            setError(new Error((data as { error: string }).error));
          }
        },
        controller.signal,
      );
    } catch (e) {
      setError(e);
    } finally {
      setRunning(false);
      abort.current = null;
    }
  };
  const stop = () => abort.current?.abort();

  return (
    <div className="page playground">
      <section className="panel inputs">
        <label>
          System prompt
          <textarea value={system} rows={2} onChange={(e) => setSystem(e.target.value)} placeholder="Optional" />
        </label>
        <label>
          Input
          <textarea
            value={input}
            rows={5}
            data-testid="playground-input"
            onChange={(e) => setInput(e.target.value)}
            placeholder="Type a test input… (Ctrl+Enter to run)"
            onKeyDown={(e) => {
              if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) void run();
              if (e.key === "Escape") stop();
            }}
          />
        </label>
        <div className="params">
          <label>
            Temperature
            <input
              type="number"
              step="0.1"
              min="0"
              max="2"
              value={temperature}
              onChange={(e) => setTemperature(Number(e.target.value))}
            />
          </label>
          <label>
            Max tokens
            <input type="number" min="1" value={maxTokens} onChange={(e) => setMaxTokens(Number(e.target.value))} />
          </label>
          <label className="check">
            <input type="checkbox" checked={markdown} onChange={(e) => setMarkdown(e.target.checked)} /> Render
            markdown
          </label>
        </div>
        <TargetPicker value={targets} onChange={setTargets} />
        <div className="actions">
          {running ? (
            <button onClick={stop}>Stop (Esc)</button>
          ) : (
            <button className="primary" onClick={() => void run()} disabled={!input.trim() || targets.length === 0}>
              Run {targets.length > 0 ? `on ${targets.length} target${targets.length > 1 ? "s" : ""}` : ""}
            </button>
          )}
          {targets.length === 0 && <span className="muted">Pick at least one target.</span>}
        </div>
        <ErrorNote error={error} />
      </section>
      <section className="columns" style={{ gridTemplateColumns: `repeat(${Math.max(columns.length, 1)}, minmax(260px, 1fr))` }}>
        {columns.length === 0 && (
          <div className="empty">
            <h3>Compare targets side by side</h3>
            <p>Write an input, pick local models and providers, and press Run. Answers stream in as they are written.</p>
          </div>
        )}
        {columns.map((col) => (
          <article key={targetKey(col.target)} className="answer" data-target={targetKey(col.target)}>
            <header>
              <strong>{displayName(col.target)}</strong>
              <span className="muted">{col.local ? "local" : col.target.provider}</span>
            </header>
            {col.error ? (
              <div className="error">{col.error}</div>
            ) : col.result?.answer.label ? (
              <Label answer={col.result.answer} />
            ) : (
              <Output text={col.result?.answer.output ?? col.text} markdown={markdown} />
            )}
            {!col.result && !col.error && running && <div className="muted streaming">writing…</div>}
            {col.result && (
              <footer>
                <span title="latency">{fmtMs(col.result.answer.latency_ms)}</span>
                {col.result.answer.ttft_ms != null && <span title="time to first token">TTFT {fmtMs(col.result.answer.ttft_ms)}</span>}
                {col.result.answer.tokens_out != null && (
                  <span title="tokens in / out">
                    {col.result.answer.tokens_in ?? "?"} → {col.result.answer.tokens_out} tok
                  </span>
                )}
                <span title="cost">{fmtCost(col.result.answer.cost_usd, col.local)}</span>
              </footer>
            )}
            {col.result && !col.result.answer.error && <FeedbackBar resultId={col.result.id} />}
          </article>
        ))}
      </section>
      {columns.filter((c) => c.result && !c.result.answer.error).length >= 2 && (
        <Preference columns={columns.filter((c) => c.result && !c.result.answer.error)} />
      )}
      {columns.some((c) => c.result) && <SaveAsCase input={asked} columns={columns} />}
    </div>
  );
}

type Saved = Partial<{ input: string; system: string; targets: TargetSpec[]; temperature: number; maxTokens: number }>;

/** The last playground, as this browser kept it (nothing if it was lost or garbled). */
function restore(): Saved {
  try {
    const saved = JSON.parse(localStorage.getItem(STORE) ?? "{}") as Saved;
    return saved && typeof saved === "object" && !Array.isArray(saved) ? saved : {};
  } catch {
    return {};
  }
}

export function displayName(t: TargetSpec) {
  return t.name ?? (t.provider ? `${t.provider}/${t.model}` : t.model);
}

function Label({ answer }: { answer: StoredResult["answer"] }) {
  const scores = Array.isArray(answer.scores)
    ? (answer.scores as { label: string; score: number }[])
    : answer.scores && typeof answer.scores === "object"
      ? Object.entries(answer.scores as Record<string, number>).map(([label, score]) => ({ label, score }))
      : [];
  return (
    <div className="label-answer">
      <div className="label">{answer.label}</div>
      {scores
        .sort((a, b) => b.score - a.score)
        .slice(0, 4)
        .map((s) => (
          <div key={s.label} className="score">
            <span>{s.label}</span>
            <span className="bar" style={{ width: `${Math.round(s.score * 100)}%` }} />
            <span className="muted">{s.score.toFixed(2)}</span>
          </div>
        ))}
    </div>
  );
}

/** A/B preference between two answers. */
function Preference({ columns }: { columns: Column[] }) {
  const [a, setA] = useState(0);
  const [b, setB] = useState(1);
  const [done, setDone] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const ra = columns[a]?.result;
  const rb = columns[b]?.result;
  const choose = async (choice: "a" | "b" | "tie") => {
    if (!ra || !rb || a === b) return;
    try {
      await api.feedback(ra.id, { kind: "preference", other: rb.id, choice, blind: false, shown_left: ra.id });
      setDone(choice === "tie" ? "Recorded: a tie" : `Recorded: ${displayName(columns[choice === "a" ? a : b].target)} is better`);
      setError(null);
    } catch (e) {
      setError(e);
    }
  };
  const pick = (value: number, set: (n: number) => void) => (
    <select value={value} onChange={(e) => (set(Number(e.target.value)), setDone(null))}>
      {columns.map((c, i) => (
        <option key={i} value={i}>
          {displayName(c.target)}
        </option>
      ))}
    </select>
  );
  return (
    <section className="panel preference">
      <strong>A/B preference:</strong> A {pick(a, setA)} vs B {pick(b, setB)}
      <button onClick={() => void choose("a")}>A is better</button>
      <button onClick={() => void choose("b")}>B is better</button>
      <button onClick={() => void choose("tie")}>Tie</button>
      {done && <span className="ok">{done}</span>}
      <ErrorNote error={error} />
    </section>
  );
}

/** The input (and an answer as its expected output) into a test set. */
function SaveAsCase({ input, columns }: { input: string; columns: Column[] }) {
  const sets = useLoad(() => api.testSets());
  const [set, setSet] = useState<Id | "new">("new");
  const [name, setName] = useState("playground");
  const [expected, setExpected] = useState("");
  const [saved, setSaved] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    if (sets.data && sets.data.length > 0 && set === "new") setSet(sets.data[0].id);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [sets.data]);
  const save = async () => {
    try {
      let id = set;
      if (id === "new") id = (await api.createTestSet(name)).id;
      const r = await api.addCases(id, [{ vars: { text: input }, expected: expected.trim() || null }]);
      setSaved(r.inserted ? "Saved as a test case." : "That case is already in the set.");
      setError(null);
      sets.reload();
    } catch (e) {
      setError(e);
    }
  };
  const answers = columns
    .map((c) => c.result?.answer.label ?? c.result?.answer.output)
    .filter((x): x is string => !!x);
  return (
    <section className="panel save-case">
      <strong>Save as test case</strong>
      <select value={set} onChange={(e) => setSet(e.target.value === "new" ? "new" : Number(e.target.value))}>
        {(sets.data ?? []).map((s) => (
          <option key={s.id} value={s.id}>
            {s.name}
          </option>
        ))}
        <option value="new">New test set…</option>
      </select>
      {set === "new" && <input aria-label="New test set name" value={name} onChange={(e) => setName(e.target.value)} />}
      <input
        aria-label="Expected answer"
        placeholder="Expected answer (optional)"
        value={expected}
        list="answers"
        onChange={(e) => setExpected(e.target.value)}
      />
      <datalist id="answers">
        {answers.map((a, i) => (
          <option key={i} value={a} />
        ))}
      </datalist>
      <button onClick={() => void save()}>Save</button>
      {saved && <span className="ok">{saved}</span>}
      <ErrorNote error={error} />
    </section>
  );
}
