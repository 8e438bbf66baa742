import { useEffect } from "react";
import { api, signalReady, type TargetSpec } from "../api";
import { ErrorNote, useLoad } from "./common";

/** Stable key of a target. */
export const targetKey = (t: TargetSpec) => (t.provider ? `${t.provider}/${t.model}` : t.model);

/**
 * Local classification and generation models, and the models of every saved provider, as
 * checkboxes. Providers whose key is missing are shown with what to do.
 */
export function TargetPicker({ value, onChange }: { value: TargetSpec[]; onChange: (t: TargetSpec[]) => void }) {
  const models = useLoad(() => api.models());
  const providers = useLoad(() => api.providers());
  const chosen = new Set(value.map(targetKey));
  // The playground is usable once its targets are listed.
  useEffect(() => {
    if (models.data && providers.data) signalReady();
  }, [models.data, providers.data]);
  const toggle = (t: TargetSpec) => {
    const key = targetKey(t);
    onChange(chosen.has(key) ? value.filter((v) => targetKey(v) !== key) : [...value, t]);
  };
  const local = (models.data ?? []).filter((m) => m.ok && m.folder && m.folder.task.task !== "embedding");
  return (
    <fieldset className="targets">
      <legend>Targets</legend>
      {/* Both lists come from the same core: one failure (say, ONNX Runtime missing) is one note. */}
      <ErrorNote error={models.error ?? providers.error} onRetry={models.error ? models.reload : providers.reload} />
      {local.map((m) => (
        <label key={m.name} className="check">
          <input
            type="checkbox"
            checked={chosen.has(m.name)}
            onChange={() => toggle({ model: m.name })}
            data-target={m.name}
          />
          {m.name} <span className="muted">local · {m.folder?.task.task}</span>
        </label>
      ))}
      {(providers.data ?? []).flatMap((p) =>
        p.models.map((model) => {
          const t = { provider: p.name, model };
          return (
            <label key={targetKey(t)} className="check">
              <input
                type="checkbox"
                checked={chosen.has(targetKey(t))}
                onChange={() => toggle(t)}
                data-target={targetKey(t)}
              />
              {p.name}/{model}{" "}
              <span className="muted">
                {p.config.kind}
                {p.key.needed && !p.key.available && ` · no key (set ${p.key.env} or add it in Settings)`}
              </span>
            </label>
          );
        }),
      )}
      {!models.loading && !providers.loading && !models.error && !providers.error && local.length === 0 && (providers.data ?? []).length === 0 && (
        <p className="muted">No models yet: add a model folder or a provider in Settings.</p>
      )}
    </fieldset>
  );
}
