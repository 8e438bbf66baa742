import { useState } from "react";
import { api, type ExportFormat, type ExportRequest, type Manifest } from "../api";
import { ErrorNote, useLoad } from "../components/common";

const FORMATS: [ExportFormat, string][] = [
  ["jsonl", "JSONL — every column"],
  ["csv", "CSV — every column"],
  ["parquet", "Parquet — typed columns"],
  ["chat", "Chat fine-tuning (OpenAI messages)"],
  ["kto", "KTO (prompt, completion, label)"],
  ["promptfoo", "promptfoo test cases (YAML)"],
  ["dpo", "Preference pairs (TRL DPO)"],
  ["openai-preference", "Preference pairs (OpenAI)"],
];

/** Filters, format and split → a preview of counts and first rows → files with their manifest. */
export function Export() {
  const runs = useLoad(() => api.runs());
  const [format, setFormat] = useState<ExportFormat>("jsonl");
  const [runId, setRunId] = useState<string>("");
  const [minRating, setMinRating] = useState("");
  const [passed, setPassed] = useState("");
  const [query, setQuery] = useState("");
  const [split, setSplit] = useState("");
  const [dedup, setDedup] = useState(false);
  const [name, setName] = useState("");
  const [preview, setPreview] = useState<{ manifest: Manifest; head: Record<string, string[]> } | null>(null);
  const [progress, setProgress] = useState<{ rows: number; running: boolean } | null>(null);
  const [result, setResult] = useState<{ dir: string; name: string; manifest: Manifest } | null>(null);
  const [error, setError] = useState<unknown>(null);

  const request = (): ExportRequest => ({
    format,
    filter: {
      run_id: runId ? Number(runId) : null,
      min_rating: minRating ? Number(minRating) : null,
      passed: passed === "" ? null : passed === "yes",
      query: query.trim() || null,
    },
    split: split ? { train: Number(split) / 100 } : null,
    dedup,
  });
  const doPreview = async () => {
    try {
      setPreview(await api.exportPreview(request()));
      setError(null);
    } catch (e) {
      setError(e);
    }
  };
  const doExport = async () => {
    const folder = name.trim() || `export-${new Date().toISOString().replace(/[:.]/g, "-")}`;
    try {
      setResult(null);
      const started = await api.startExport({ ...request(), name: folder });
      setProgress({ rows: 0, running: true });
      await api.watchJob(started.job, ({ event, data }) => {
        const d = data as { rows?: number; result?: { dir: string; manifest: Manifest }; error?: string };
        if (event === "progress") setProgress({ rows: d.rows ?? 0, running: true });
        if (event === "done" && d.result) setResult({ ...d.result, name: folder });
        if (event === "failed") setError(new Error(d.error ?? "the export failed"));
        if (event === "state" && (data as { status: string }).status === "done") {
          const s = data as { result: { dir: string; manifest: Manifest } };
          setResult({ ...s.result, name: folder });
        }
      });
      setError(null);
    } catch (e) {
      setError(e);
    } finally {
      setProgress((p) => (p ? { ...p, running: false } : p));
    }
  };
  const download = async (file: string) => {
    if (!result) return;
    try {
      const blob = await api.exportFile(result.name, file);
      const url = URL.createObjectURL(blob);
      const a = document.createElement("a");
      a.href = url;
      a.download = file;
      a.click();
      setTimeout(() => URL.revokeObjectURL(url), 1000);
    } catch (e) {
      setError(e);
    }
  };

  return (
    <div className="page export">
      <section className="panel">
        <h2>Export an evaluation set</h2>
        <label>
          Format
          <select value={format} onChange={(e) => setFormat(e.target.value as ExportFormat)} data-testid="export-format">
            {FORMATS.map(([f, label]) => (
              <option key={f} value={f}>
                {label}
              </option>
            ))}
          </select>
        </label>
        <fieldset>
          <legend>Filters</legend>
          <label>
            Run
            <select value={runId} onChange={(e) => setRunId(e.target.value)} data-testid="export-run">
              <option value="">All runs</option>
              {(runs.data ?? []).map((r) => (
                <option key={r.id} value={r.id}>
                  #{r.id} {r.name} ({r.results})
                </option>
              ))}
            </select>
          </label>
          <label>
            Rating at least
            <select value={minRating} onChange={(e) => setMinRating(e.target.value)}>
              <option value="">any</option>
              {[1, 2, 3, 4, 5].map((n) => (
                <option key={n}>{n}</option>
              ))}
            </select>
          </label>
          <label>
            Assertions
            <select value={passed} onChange={(e) => setPassed(e.target.value)}>
              <option value="">any</option>
              <option value="yes">passed</option>
              <option value="no">failed</option>
            </select>
          </label>
          <label>
            Text <input value={query} onChange={(e) => setQuery(e.target.value)} placeholder="full-text query" />
          </label>
        </fieldset>
        <label>
          Train split %{" "}
          <input type="number" min="1" max="99" value={split} onChange={(e) => setSplit(e.target.value)} placeholder="no split" />
        </label>
        <label className="check">
          <input type="checkbox" checked={dedup} onChange={(e) => setDedup(e.target.checked)} /> Drop repeated inputs
        </label>
        <label>
          Folder name <input value={name} onChange={(e) => setName(e.target.value)} placeholder="export-<time>" />
        </label>
        <div className="actions">
          <button onClick={() => void doPreview()}>Preview</button>
          <button className="primary" onClick={() => void doExport()} disabled={progress?.running}>
            Export
          </button>
        </div>
        <ErrorNote error={error} />
      </section>
      <section className="main">
        {progress?.running && (
          <div className="progress">
            <div className="bar indeterminate" />
            <span>{progress.rows} rows written…</span>
          </div>
        )}
        {preview && !result && (
          <div className="preview" data-testid="export-preview">
            <h3>Preview</h3>
            <Counts manifest={preview.manifest} />
            {Object.entries(preview.head).map(([file, rows]) => (
              <div key={file}>
                <div className="muted">{file} — first rows</div>
                <pre className="output-text">{rows.length ? rows.join("\n") : "(binary file: rows are counted above)"}</pre>
              </div>
            ))}
          </div>
        )}
        {result && (
          <div className="result" data-testid="export-result">
            <h3>Written to {result.dir}</h3>
            <Counts manifest={result.manifest} />
            <table>
              <thead>
                <tr>
                  <th>File</th>
                  <th>Split</th>
                  <th>Rows</th>
                  <th>Bytes</th>
                  <th>sha256</th>
                </tr>
              </thead>
              <tbody>
                {result.manifest.files.map((f) => (
                  <tr key={f.path}>
                    <td>
                      <button className="link" onClick={() => void download(f.path)}>
                        {f.path}
                      </button>
                    </td>
                    <td>{f.split}</td>
                    <td>{f.rows}</td>
                    <td>{f.bytes}</td>
                    <td className="mono">{f.sha256.slice(0, 16)}…</td>
                  </tr>
                ))}
              </tbody>
            </table>
            <p className="muted">A manifest.json and a dataset card README.md are in the folder too.</p>
          </div>
        )}
      </section>
    </div>
  );
}

function Counts({ manifest }: { manifest: Manifest }) {
  return (
    <p>
      {Object.entries(manifest.counts)
        .map(([split, c]) => `${split}: ${c.rows} rows`)
        .join(" · ") || "no rows"}
      {manifest.skipped_duplicates > 0 && ` · ${manifest.skipped_duplicates} repeated inputs dropped`}
      {manifest.skipped_not_applicable > 0 && ` · ${manifest.skipped_not_applicable} results not applicable to this format`}
    </p>
  );
}
