import { useEffect, useState } from "react";
import { api, transportKind, type LocalServer, type ModelValidation, type Price } from "../api";
import { ErrorNote, useLoad } from "../components/common";

/** Models, providers and their keys, prices, where data lives, and the API server. */
export function Settings({ onSignOut }: { onSignOut: () => void }) {
  return (
    <div className="page settings">
      <Models />
      <Providers />
      <Prices />
      <About onSignOut={onSignOut} />
    </div>
  );
}

function Models() {
  const models = useLoad(() => api.models());
  return (
    <section className="panel">
      <h2>Models</h2>
      <ErrorNote error={models.error} onRetry={models.reload} />
      <table>
        <thead>
          <tr>
            <th>Name</th>
            <th>Task</th>
            <th>Size</th>
            <th>Folder</th>
          </tr>
        </thead>
        <tbody>
          {(models.data ?? []).map((m) => (
            <tr key={m.dir} className={m.ok ? "" : "problem"}>
              <td>{m.name}</td>
              <td>{m.ok ? m.folder?.task.task : <span className="error-text">unusable: {m.problem}</span>}</td>
              <td>{m.folder ? `${(m.folder.size_bytes / 1e6).toFixed(1)} MB` : ""}</td>
              <td className="mono">{m.dir}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <AddModel onAdded={models.reload} />
      <DownloadModel onDone={models.reload} />
    </section>
  );
}

/** A model folder on this machine: validated (loaded into ONNX Runtime), then added. */
function AddModel({ onAdded }: { onAdded: () => void }) {
  const [dir, setDir] = useState("");
  const [name, setName] = useState("");
  const [checked, setChecked] = useState<ModelValidation | null>(null);
  const [busy, setBusy] = useState(false);
  const [message, setMessage] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const act = async (work: () => Promise<void>) => {
    setBusy(true);
    setError(null);
    setMessage(null);
    try {
      await work();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  const mb = (b: number | null) => (b == null ? "?" : `${(b / 1e6).toFixed(1)} MB`);
  return (
    <div className="add-model">
      <h3>Add a model folder</h3>
      <form className="row" onSubmit={(e) => (e.preventDefault(), void act(async () => setChecked(await api.validateModel(dir.trim()))))}>
        <input placeholder="/path/to/model-folder" value={dir} onChange={(e) => (setDir(e.target.value), setChecked(null))} aria-label="Model folder" />
        <input placeholder="name (optional)" value={name} onChange={(e) => setName(e.target.value)} aria-label="Model name" />
        <button disabled={!dir.trim() || busy}>Validate</button>
        <button
          type="button"
          className="primary"
          disabled={!checked || busy}
          onClick={() =>
            void act(async () => {
              const r = await api.addModel(dir.trim(), name.trim());
              setMessage(`Added ${r.validation.folder.name} at ${r.dir}`);
              setChecked(null);
              onAdded();
            })
          }
        >
          Add
        </button>
      </form>
      {busy && <div className="muted">Loading the model into ONNX Runtime…</div>}
      {checked && (
        <div className="ok" data-testid="model-validation">
          {checked.folder.name}: {checked.folder.task.task}, inputs {checked.inputs.join(", ")} → {checked.outputs.join(", ")}; weights{" "}
          {mb(checked.weights_bytes)}, memory measured {mb(checked.measured_bytes)}
          {checked.warnings.map((w) => (
            <div key={w} className="muted">
              ⚠ {w}
            </div>
          ))}
        </div>
      )}
      {message && <div className="ok">{message}</div>}
      <ErrorNote error={error} />
    </div>
  );
}

function Providers() {
  const providers = useLoad(() => api.providers());
  const [form, setForm] = useState({ name: "", kind: "openai", base_url: "https://api.openai.com/v1", models: "", key_env: "" });
  const [keys, setKeys] = useState<Record<string, string>>({});
  const [error, setError] = useState<unknown>(null);
  const [message, setMessage] = useState<string | null>(null);
  const act = async (work: () => Promise<unknown>, done: string) => {
    try {
      await work();
      setMessage(done);
      setError(null);
      providers.reload();
    } catch (e) {
      setError(e);
    }
  };
  const save = () =>
    act(
      () =>
        api.saveProvider(form.name.trim(), {
          kind: form.kind,
          base_url: form.base_url.trim(),
          models: form.models.split(",").map((m) => m.trim()).filter(Boolean),
          key_env: form.key_env.trim() || undefined,
          no_key: form.kind === "ollama" ? true : undefined,
        }),
      `Saved ${form.name}`,
    );
  return (
    <section className="panel">
      <h2>Providers</h2>
      <table>
        <thead>
          <tr>
            <th>Name</th>
            <th>Kind</th>
            <th>Base URL</th>
            <th>Models</th>
            <th>Key</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {(providers.data ?? []).map((p) => (
            <tr key={p.name} data-provider={p.name}>
              <td>{p.name}</td>
              <td>{p.config.kind}</td>
              <td className="mono">{p.config.base_url}</td>
              <td>{p.models.join(", ")}</td>
              <td>
                {!p.key.needed ? (
                  "not needed"
                ) : p.key.available ? (
                  <span className="ok">from {p.key.source}</span>
                ) : (
                  <span className="error-text">missing (set {p.key.env}, or store one)</span>
                )}
                {p.key.needed && (
                  <form
                    className="row"
                    onSubmit={(e) => {
                      e.preventDefault();
                      const key = keys[p.name] ?? "";
                      setKeys({ ...keys, [p.name]: "" });
                      void act(() => api.setProviderKey(p.name, key), `Key for ${p.name} stored in the OS keychain`);
                    }}
                  >
                    <input
                      type="password"
                      autoComplete="off"
                      placeholder="API key → keychain"
                      value={keys[p.name] ?? ""}
                      onChange={(e) => setKeys({ ...keys, [p.name]: e.target.value })}
                      aria-label={`API key for ${p.name}`}
                    />
                    <button className="small">Store</button>
                  </form>
                )}
              </td>
              <td>
                <button className="small ghost" onClick={() => void act(() => api.deleteProvider(p.name), `Removed ${p.name}`)}>
                  Remove
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <form className="provider-form" onSubmit={(e) => (e.preventDefault(), void save())}>
        <input placeholder="name" value={form.name} onChange={(e) => setForm({ ...form, name: e.target.value })} aria-label="Provider name" />
        <select
          value={form.kind}
          onChange={(e) => {
            const kind = e.target.value;
            const base_url = kind === "anthropic" ? "https://api.anthropic.com" : kind === "ollama" ? "http://127.0.0.1:11434/v1" : "https://api.openai.com/v1";
            setForm({ ...form, kind, base_url });
          }}
          aria-label="Provider kind"
        >
          <option value="openai">OpenAI-compatible</option>
          <option value="anthropic">Anthropic</option>
          <option value="ollama">Ollama</option>
        </select>
        <input placeholder="base URL" value={form.base_url} onChange={(e) => setForm({ ...form, base_url: e.target.value })} aria-label="Base URL" />
        <input placeholder="model ids, comma-separated" value={form.models} onChange={(e) => setForm({ ...form, models: e.target.value })} aria-label="Model ids" />
        <input placeholder="key variable (optional)" value={form.key_env} onChange={(e) => setForm({ ...form, key_env: e.target.value })} aria-label="Key variable" />
        <button className="primary" disabled={!form.name.trim()}>
          Save provider
        </button>
      </form>
      <p className="muted">Keys are kept in the OS keychain or an environment variable, never in Benchtop's log or exports.</p>
      {message && <div className="ok">{message}</div>}
      <ErrorNote error={providers.error ?? error} />
    </section>
  );
}

function Prices() {
  const settings = useLoad(() => api.settings());
  const [rows, setRows] = useState<[string, Price][]>([]);
  const [error, setError] = useState<unknown>(null);
  const [saved, setSaved] = useState(false);
  useEffect(() => {
    if (settings.data) setRows(Object.entries(settings.data.prices));
  }, [settings.data]);
  const save = async () => {
    try {
      await api.savePrices(Object.fromEntries(rows.filter(([m]) => m.trim())));
      setSaved(true);
      setError(null);
    } catch (e) {
      setError(e);
    }
  };
  const edit = (i: number, field: 0 | "input_per_mtok" | "output_per_mtok", value: string) => {
    setSaved(false);
    setRows(rows.map((r, j) => (j !== i ? r : field === 0 ? [value, r[1]] : [r[0], { ...r[1], [field]: Number(value) }])));
  };
  return (
    <section className="panel">
      <h2>Prices (USD per million tokens)</h2>
      <table className="prices">
        <thead>
          <tr>
            <th>Model id (prefix)</th>
            <th>Input</th>
            <th>Output</th>
          </tr>
        </thead>
        <tbody>
          {rows.map(([model, p], i) => (
            <tr key={i}>
              <td>
                <input value={model} onChange={(e) => edit(i, 0, e.target.value)} aria-label="model id" />
              </td>
              <td>
                <input type="number" step="0.01" min="0" value={p.input_per_mtok} onChange={(e) => edit(i, "input_per_mtok", e.target.value)} aria-label={`${model} input price`} />
              </td>
              <td>
                <input type="number" step="0.01" min="0" value={p.output_per_mtok} onChange={(e) => edit(i, "output_per_mtok", e.target.value)} aria-label={`${model} output price`} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <div className="actions">
        <button onClick={() => setRows([...rows, ["", { input_per_mtok: 0, output_per_mtok: 0 }]])}>Add a price</button>
        <button className="primary" onClick={() => void save()}>
          Save prices
        </button>
        {saved && <span className="ok">Saved to {settings.data?.prices_file}</span>}
      </div>
      <ErrorNote error={settings.error ?? error} />
    </section>
  );
}

function About({ onSignOut }: { onSignOut: () => void }) {
  const settings = useLoad(() => api.settings());
  const s = settings.data;
  return (
    <section className="panel">
      <h2>Data and API</h2>
      {s && (
        <dl>
          <dt>Data directory</dt>
          <dd className="mono">{s.data_dir}</dd>
          <dt>Feedback log</dt>
          <dd className="mono">{s.log}</dd>
          <dt>Model folders</dt>
          <dd className="mono">{s.models_dirs.join(" · ")}</dd>
          <dt>Version</dt>
          <dd>{s.version}</dd>
        </dl>
      )}
      {transportKind() === "browser" ? (
        <p>
          This page talks to <code>benchtop serve</code> at {window.location.origin}; the same server answers the local inference API
          (<code>/v1/predict</code>, <code>/v1/embeddings</code>, <code>/v1/chat/completions</code>) with the token{" "}
          <code>benchtop token</code> prints. <button className="link" onClick={onSignOut}>Forget the token in this browser</button>
        </p>
      ) : (
        <LocalApi />
      )}
      <ErrorNote error={settings.error} />
    </section>
  );
}

/** Desktop: the local inference API on or off, with its URL and token. */
function LocalApi() {
  const control = api.localServer();
  const [status, setStatus] = useState<LocalServer | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [showToken, setShowToken] = useState(false);
  useEffect(() => {
    void control?.status().then(setStatus, setError);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);
  if (!control) return null;
  const toggle = async (on: boolean) => {
    try {
      setStatus(await control.set(on));
      setError(null);
    } catch (e) {
      setError(e);
    }
  };
  return (
    <div className="local-api">
      <label className="check">
        <input type="checkbox" checked={!!status?.running} onChange={(e) => void toggle(e.target.checked)} /> Serve the local
        inference API (<code>/v1/predict</code>, <code>/v1/embeddings</code>, <code>/v1/chat/completions</code>) to other programs on
        this machine
      </label>
      {status?.running && (
        <dl>
          <dt>URL</dt>
          <dd className="mono">{status.url}</dd>
          <dt>Token</dt>
          <dd className="mono">
            {showToken ? status.token : "••••••••••••"}{" "}
            <button className="small" onClick={() => setShowToken(!showToken)}>
              {showToken ? "Hide" : "Show"}
            </button>
          </dd>
        </dl>
      )}
      <p className="muted">The desktop window itself talks to Benchtop in process; nothing listens on a port while this is off.</p>
      <ErrorNote error={error} />
    </div>
  );
}

/** A model from the Hugging Face Hub (or HF_ENDPOINT's mirror), with byte progress and cancel. */
function DownloadModel({ onDone }: { onDone: () => void }) {
  const [repo, setRepo] = useState("");
  const [name, setName] = useState("");
  const [job, setJob] = useState<number | null>(null);
  const [progress, setProgress] = useState<{ done: number; total: number; file: string | null } | null>(null);
  const [message, setMessage] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const start = async () => {
    setError(null);
    setMessage(null);
    setProgress(null);
    try {
      const started = await api.downloadModel(repo.trim(), name.trim());
      setJob(started.job);
      await api.watchJob(started.job, ({ event, data }) => {
        const d = data as { done?: number; total?: number; file?: string | null; error?: string; result?: { dir?: string } };
        if (event === "progress") setProgress({ done: d.done ?? 0, total: d.total ?? 0, file: d.file ?? null });
        if (event === "done") (setMessage(`Downloaded ${started.name} to ${d.result?.dir ?? "your models"}`), onDone());
        if (event === "cancelled") setMessage("Stopped. What arrived is kept: download again to resume.");
        if (event === "failed") setError(new Error(d.error ?? "the download failed"));
      });
    } catch (e) {
      setError(e);
    } finally {
      setJob(null);
    }
  };
  const mb = (b: number) => `${(b / 1e6).toFixed(1)} MB`;
  return (
    <div className="download-model">
      <h3>Download from the Hugging Face Hub</h3>
      <form className="row" onSubmit={(e) => (e.preventDefault(), void start())}>
        <input placeholder="owner/name, e.g. onnx-community/Qwen2.5-0.5B-Instruct" value={repo} onChange={(e) => setRepo(e.target.value)} aria-label="Repository id" />
        <input placeholder="name (optional)" value={name} onChange={(e) => setName(e.target.value)} aria-label="Download name" />
        {job == null ? (
          <button className="primary" disabled={!repo.includes("/")}>
            Download
          </button>
        ) : (
          <button type="button" onClick={() => void api.cancelJob(job).catch(setError)}>
            Cancel
          </button>
        )}
      </form>
      {progress && job != null && (
        <div className="progress" role="progressbar" aria-valuenow={progress.done} aria-valuemax={progress.total}>
          <div className="bar" style={{ width: `${progress.total ? (100 * progress.done) / progress.total : 0}%` }} />
          <span>
            {mb(progress.done)} / {mb(progress.total)} {progress.file ?? ""}
          </span>
        </div>
      )}
      {message && <div className="ok">{message}</div>}
      <ErrorNote error={error} />
    </div>
  );
}
