import { useCallback, useEffect, useState, type ReactNode } from "react";
import { ApiError } from "../api";

/** What went wrong, where it happened, and the way out. */
export function ErrorNote({ error, onRetry }: { error: unknown; onRetry?: () => void }) {
  if (!error) return null;
  const message = error instanceof Error ? error.message : String(error);
  const hint =
    error instanceof ApiError && error.status === 401
      ? "Sign in again with the token `benchtop token` prints."
      : error instanceof ApiError && error.status === 0
        ? "Start Benchtop with `benchtop serve`, then retry."
        : null;
  return (
    <div className="error" role="alert">
      <strong>Error:</strong> {message}
      {hint && <div className="hint">{hint}</div>}
      {onRetry && (
        <button className="small" onClick={onRetry}>
          Retry
        </button>
      )}
    </div>
  );
}

export function Empty({ title, children }: { title: string; children?: ReactNode }) {
  return (
    <div className="empty">
      <h3>{title}</h3>
      {children}
    </div>
  );
}

/** Load something once (and again on `reload`), with its error. */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[] = []) {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState(true);
  const [tick, setTick] = useState(0);
  // eslint-disable-next-line react-hooks/exhaustive-deps
  const run = useCallback(load, deps);
  useEffect(() => {
    let live = true;
    setLoading(true);
    run()
      .then((d) => live && (setData(d), setError(null)))
      .catch((e) => live && setError(e))
      .finally(() => live && setLoading(false));
    return () => {
      live = false;
    };
  }, [run, tick]);
  return { data, error, loading, reload: () => setTick((t) => t + 1), setData };
}

export function fmtMs(ms: number | null | undefined): string {
  if (ms == null) return "–";
  return ms < 1000 ? `${ms.toFixed(ms < 10 ? 1 : 0)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

export function fmtCost(usd: number | null | undefined, local = false): string {
  if (local) return "$0 (local)";
  if (usd == null) return "–";
  return usd < 0.01 ? `$${usd.toFixed(5)}` : `$${usd.toFixed(3)}`;
}

export function fmtTime(ms: number): string {
  return new Date(ms).toLocaleString();
}
