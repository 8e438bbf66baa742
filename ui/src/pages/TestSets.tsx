import { useEffect, useMemo, useState } from "react";
import { api, type Case, type Id, type ImportPreview, type NewCase } from "../api";
import { Empty, ErrorNote, useLoad } from "../components/common";

/** Test sets: a table editor (add, edit, delete, paste from a spreadsheet) and file import. */
export function TestSets() {
  const sets = useLoad(() => api.testSets());
  const [current, setCurrent] = useState<Id | null>(null);
  const [newName, setNewName] = useState("");
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    if (current == null && sets.data?.length) setCurrent(sets.data[0].id);
  }, [sets.data, current]);
  const create = async () => {
    if (!newName.trim()) return;
    try {
      const r = await api.createTestSet(newName.trim());
      setNewName("");
      sets.reload();
      setCurrent(r.id);
      setError(null);
    } catch (e) {
      setError(e);
    }
  };
  const set = sets.data?.find((s) => s.id === current);
  return (
    <div className="page test-sets">
      <aside className="sidebar">
        <form onSubmit={(e) => (e.preventDefault(), void create())} className="row">
          <input placeholder="New test set name" value={newName} onChange={(e) => setNewName(e.target.value)} aria-label="New test set name" />
          <button className="primary">Create</button>
        </form>
        <ErrorNote error={sets.error ?? error} onRetry={sets.reload} />
        <ul className="list">
          {(sets.data ?? []).map((s) => (
            <li key={s.id} className={s.id === current ? "active" : ""}>
              <button className="link" onClick={() => setCurrent(s.id)}>
                <strong>{s.name}</strong> <span className="muted">{s.cases} cases</span>
              </button>
            </li>
          ))}
        </ul>
      </aside>
      <section className="main">
        {set ? (
          <SetEditor
            key={set.id}
            setId={set.id}
            name={set.name}
            onChange={sets.reload}
            onDeleted={() => (setCurrent(null), sets.reload())}
          />
        ) : (
          <Empty title="No test set selected">
            <p>Create a test set on the left, then add cases, paste rows from a spreadsheet, or import a CSV/JSONL file.</p>
          </Empty>
        )}
      </section>
    </div>
  );
}

function SetEditor({ setId, name, onChange, onDeleted }: { setId: Id; name: string; onChange: () => void; onDeleted: () => void }) {
  const cases = useLoad(() => api.cases(setId), [setId]);
  const [error, setError] = useState<unknown>(null);
  const [message, setMessage] = useState<string | null>(null);
  const [mode, setMode] = useState<"table" | "paste" | "import">("table");
  const vars = useMemo(() => {
    const keys = new Set<string>(["text"]);
    for (const c of cases.data ?? []) Object.keys(c.vars).forEach((k) => keys.add(k));
    return [...keys];
  }, [cases.data]);
  const act = async (work: () => Promise<string | void>) => {
    try {
      const m = await work();
      setMessage(m ?? null);
      setError(null);
      cases.reload();
      onChange();
    } catch (e) {
      setError(e);
    }
  };
  const add = (list: NewCase[]) =>
    act(async () => {
      const r = await api.addCases(setId, list);
      return `${r.inserted} added${r.duplicates ? `, ${r.duplicates} already there` : ""}`;
    });

  return (
    <div className="set-editor">
      <header className="run-head">
        <h2>{name}</h2>
        <div className="tabs" role="tablist">
          {(["table", "paste", "import"] as const).map((m) => (
            <button key={m} role="tab" aria-selected={mode === m} className={mode === m ? "on" : ""} onClick={() => setMode(m)}>
              {m === "table" ? "Cases" : m === "paste" ? "Paste rows" : "Import file"}
            </button>
          ))}
        </div>
        <button
          className="ghost danger"
          onClick={() => {
            if (confirm(`Delete the test set “${name}” and its cases? Recorded results keep their inputs.`)) {
              void api.deleteTestSet(setId).then(onDeleted, setError);
            }
          }}
        >
          Delete set
        </button>
      </header>
      {message && <div className="ok">{message}</div>}
      <ErrorNote error={cases.error ?? error} />
      {mode === "table" && (
        <table className="cases" data-testid="cases">
          <thead>
            <tr>
              {vars.map((v) => (
                <th key={v}>{v}</th>
              ))}
              <th>expected</th>
              <th>tags</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {(cases.data ?? []).map((c) => (
              <CaseRow key={c.id} c={c} vars={vars} onSave={(nc) => act(() => api.updateCase(c.id, nc).then(() => "Saved"))} onDelete={() => act(() => api.deleteCase(c.id).then(() => "Deleted"))} />
            ))}
            <NewRow vars={vars} onAdd={(nc) => add([nc])} />
          </tbody>
        </table>
      )}
      {mode === "paste" && <Paste vars={vars} onAdd={add} />}
      {mode === "import" && <Import setId={setId} onDone={() => (cases.reload(), onChange(), setMode("table"))} />}
    </div>
  );
}

function toCase(vars: string[], values: Record<string, string>): NewCase {
  const v: Record<string, string> = {};
  for (const k of vars) if ((values[k] ?? "").trim()) v[k] = values[k];
  return {
    vars: v,
    expected: values.expected?.trim() || null,
    tags: (values.tags ?? "").split(/[,;|]/).map((t) => t.trim()).filter(Boolean),
  };
}

function CaseRow({ c, vars, onSave, onDelete }: { c: Case; vars: string[]; onSave: (c: NewCase) => void; onDelete: () => void }) {
  const initial = useMemo(() => {
    const values: Record<string, string> = { expected: c.expected ?? "", tags: c.tags.join(", ") };
    for (const k of vars) values[k] = c.vars[k] == null ? "" : typeof c.vars[k] === "string" ? (c.vars[k] as string) : JSON.stringify(c.vars[k]);
    return values;
  }, [c, vars]);
  const [values, setValues] = useState(initial);
  const dirty = JSON.stringify(values) !== JSON.stringify(initial);
  const commit = () => dirty && onSave(toCase(vars, values));
  return (
    <tr data-case={c.id}>
      {[...vars, "expected", "tags"].map((k) => (
        <td key={k}>
          <input
            aria-label={k}
            value={values[k] ?? ""}
            onChange={(e) => setValues({ ...values, [k]: e.target.value })}
            onBlur={commit}
            onKeyDown={(e) => e.key === "Enter" && commit()}
          />
        </td>
      ))}
      <td>
        <button className="small ghost" aria-label="Delete case" onClick={onDelete}>
          ✕
        </button>
      </td>
    </tr>
  );
}

function NewRow({ vars, onAdd }: { vars: string[]; onAdd: (c: NewCase) => void }) {
  const [values, setValues] = useState<Record<string, string>>({});
  const add = () => {
    const nc = toCase(vars, values);
    if (Object.keys(nc.vars).length === 0) return;
    onAdd(nc);
    setValues({});
  };
  return (
    <tr className="new-row">
      {[...vars, "expected", "tags"].map((k) => (
        <td key={k}>
          <input
            aria-label={`new ${k}`}
            placeholder={k === vars[0] ? "New case…" : ""}
            value={values[k] ?? ""}
            onChange={(e) => setValues({ ...values, [k]: e.target.value })}
            onKeyDown={(e) => e.key === "Enter" && add()}
          />
        </td>
      ))}
      <td>
        <button className="small primary" onClick={add}>
          Add
        </button>
      </td>
    </tr>
  );
}

/** Rows copied from a spreadsheet: tab-separated columns in the order shown. */
export function parsePasted(text: string, vars: string[]): NewCase[] {
  const columns = [...vars, "expected", "tags"];
  return text
    .split(/\r?\n/)
    .filter((line) => line.trim())
    .map((line) => {
      const cells = line.split("\t");
      const values: Record<string, string> = {};
      columns.forEach((k, i) => (values[k] = cells[i] ?? ""));
      return toCase(vars, values);
    })
    .filter((c) => Object.keys(c.vars).length > 0);
}

function Paste({ vars, onAdd }: { vars: string[]; onAdd: (c: NewCase[]) => void }) {
  const [text, setText] = useState("");
  const parsed = parsePasted(text, vars);
  return (
    <div className="paste">
      <p className="muted">
        Copy rows in a spreadsheet and paste them here. Columns, in order: {[...vars, "expected", "tags"].join(" · ")}.
      </p>
      <textarea rows={8} value={text} onChange={(e) => setText(e.target.value)} aria-label="Pasted rows" />
      <button className="primary" disabled={parsed.length === 0} onClick={() => (onAdd(parsed), setText(""))}>
        Add {parsed.length} case{parsed.length === 1 ? "" : "s"}
      </button>
    </div>
  );
}

function Import({ setId, onDone }: { setId: Id; onDone: () => void }) {
  const [file, setFile] = useState<{ name: string; format: "csv" | "jsonl"; content: string } | null>(null);
  const [preview, setPreview] = useState<ImportPreview | null>(null);
  const [varCols, setVarCols] = useState<string[] | null>(null);
  const [expected, setExpected] = useState("");
  const [tags, setTags] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [result, setResult] = useState<ImportPreview | null>(null);

  const body = (dry: boolean) =>
    file && {
      format: file.format,
      content: file.content,
      vars: varCols ?? undefined,
      expected: expected || undefined,
      tags: tags || undefined,
      dry_run: dry,
    };
  const refresh = async (over?: Partial<{ vars: string[] | null; expected: string; tags: string }>) => {
    const b = body(true);
    if (!b) return;
    try {
      setPreview(await api.importCases(setId, { ...b, ...over, vars: (over?.vars ?? b.vars) || undefined }));
      setError(null);
    } catch (e) {
      setError(e);
    }
  };
  useEffect(() => {
    void refresh();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [file, varCols, expected, tags]);

  const pick = async (f: File | undefined) => {
    if (!f) return;
    const format = f.name.toLowerCase().endsWith(".csv") ? "csv" : f.name.toLowerCase().match(/\.(jsonl|ndjson)$/) ? "jsonl" : null;
    if (!format) return setError(new Error(`${f.name}: import takes .csv or .jsonl files (Parquet: \`benchtop sets import\`)`));
    if (f.size > 50 * 1024 * 1024) return setError(new Error(`${f.name} is over 50 MB; import it with \`benchtop sets import\``));
    setResult(null);
    setVarCols(null);
    setFile({ name: f.name, format, content: await f.text() });
  };
  const run = async () => {
    const b = body(false);
    if (!b) return;
    try {
      setResult(await api.importCases(setId, b));
      setError(null);
    } catch (e) {
      setError(e);
    }
  };
  const columns = preview?.columns ?? [];
  return (
    <div className="import">
      <input type="file" accept=".csv,.jsonl,.ndjson" onChange={(e) => void pick(e.target.files?.[0])} aria-label="File to import" />
      <ErrorNote error={error} />
      {preview && (
        <>
          <fieldset className="mapping">
            <legend>Column mapping</legend>
            <div>
              Input variables:{" "}
              {columns.map((c) => (
                <label key={c} className="check">
                  <input
                    type="checkbox"
                    checked={varCols ? varCols.includes(c) : c !== expected && c !== tags && !["expected", "label", "answer", "tags"].includes(c)}
                    onChange={(e) => {
                      const base = varCols ?? columns.filter((x) => !["expected", "label", "answer", "tags"].includes(x));
                      setVarCols(e.target.checked ? [...base, c] : base.filter((x) => x !== c));
                    }}
                  />
                  {c}
                </label>
              ))}
            </div>
            <label>
              Expected column
              <select value={expected} onChange={(e) => setExpected(e.target.value)}>
                <option value="">(automatic: expected, label or answer)</option>
                {columns.map((c) => (
                  <option key={c}>{c}</option>
                ))}
              </select>
            </label>
            <label>
              Tags column
              <select value={tags} onChange={(e) => setTags(e.target.value)}>
                <option value="">(automatic: tags)</option>
                {columns.map((c) => (
                  <option key={c}>{c}</option>
                ))}
              </select>
            </label>
          </fieldset>
          <p>
            {preview.count} rows will be imported{preview.rejected.length > 0 && `, ${preview.rejected.length} rejected`}.
          </p>
          <table className="cases">
            <thead>
              <tr>
                <th>vars</th>
                <th>expected</th>
                <th>tags</th>
              </tr>
            </thead>
            <tbody>
              {(preview.preview ?? []).map((c, i) => (
                <tr key={i}>
                  <td className="mono">{JSON.stringify(c.vars)}</td>
                  <td>{c.expected}</td>
                  <td>{(c.tags ?? []).join(", ")}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {preview.rejected.length > 0 && (
            <div className="rejected" data-testid="rejected">
              <h4>Rejected rows</h4>
              <ul>
                {preview.rejected.slice(0, 100).map((r) => (
                  <li key={r.line}>
                    line {r.line}: {r.reason}
                  </li>
                ))}
              </ul>
            </div>
          )}
          <button className="primary" onClick={() => void run()} disabled={preview.count === 0}>
            Import {preview.count} rows
          </button>
        </>
      )}
      {result?.added && (
        <div className="ok">
          Imported {result.added.inserted} cases ({result.added.duplicates} already there, {result.rejected.length} rejected).{" "}
          <button className="link" onClick={onDone}>
            Show the cases
          </button>
        </div>
      )}
    </div>
  );
}
