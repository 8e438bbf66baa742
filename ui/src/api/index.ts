// Every call the UI makes, by name. Components import from here and never from a transport.

import { HttpTransport, takeToken } from "./http";
import { TauriTransport, inDesktop } from "./tauri";
import type { StreamEvent, Transport } from "./transport";
import type * as T from "./types";

export { ApiError } from "./transport";
export type { LocalServer, StreamEvent } from "./transport";
export * from "./types";

let token: string | null = null;
let transport: Transport = inDesktop() ? new TauriTransport() : new HttpTransport(() => token);
if (!inDesktop()) token = takeToken();

/** For tests: talk through another transport. */
export function useTransport(t: Transport) {
  transport = t;
}

export function transportKind(): "desktop" | "browser" {
  return transport.kind;
}

/** Tell the shell the first page is interactive. */
let readySent = false;
export function signalReady() {
  if (readySent) return;
  readySent = true;
  transport.ready();
}

export function hasToken(): boolean {
  return transport.kind === "desktop" || !!token;
}

export function setToken(value: string) {
  token = value.trim();
  localStorage.setItem("benchtop.token", token);
}

/** Results asked for first when a run opens: more than a screenful of rows, a small answer. */
export const FIRST_SCREEN = 200;

// A run opened by its URL: its results (the biggest answer) are asked for while the page's code
// is still loading, and handed over when the page asks.
const early = new Map<string, Promise<unknown>>();
{
  const run = /^\/runs\/(\d+)$/.exec(typeof window === "undefined" ? "" : window.location.pathname);
  if (run && hasToken()) {
    for (const path of [`/api/runs/${run[1]}/results?limit=${FIRST_SCREEN}`, `/api/runs/${run[1]}`]) {
      const request = transport.request("GET", path);
      request.catch(() => undefined);
      early.set(path, request);
    }
  }
}

const get = <R>(path: string): Promise<R> => {
  const ready = early.get(path);
  if (ready) {
    early.delete(path);
    return ready as Promise<R>;
  }
  return transport.request<R>("GET", path);
};
const send = <R>(method: string, path: string, body?: unknown) => transport.request<R>(method, path, body);
const q = encodeURIComponent;

export const api = {
  models: () => get<{ models: T.ModelEntry[] }>("/api/models").then((r) => r.models),
  downloadModel: (repo: string, name?: string) =>
    send<{ job: number; name: string }>("POST", "/api/models/download", { repo, name: name || undefined }),
  validateModel: (dir: string) => send<T.ModelValidation>("POST", "/api/models/validate", { dir }),
  addModel: (dir: string, name?: string) =>
    send<{ dir: string; validation: T.ModelValidation }>("POST", "/api/models", { dir, name: name || undefined }),
  providers: () => get<{ providers: T.SavedProvider[] }>("/api/providers").then((r) => r.providers),
  saveProvider: (name: string, body: Omit<T.ProviderConfig, "name"> & { models: string[] }) =>
    send<unknown>("PUT", `/api/providers/${q(name)}`, body),
  deleteProvider: (name: string) => send<null>("DELETE", `/api/providers/${q(name)}`),
  setProviderKey: (name: string, key: string) => send<unknown>("PUT", `/api/providers/${q(name)}/key`, { key }),

  testSets: () => get<{ test_sets: T.TestSet[] }>("/api/test-sets").then((r) => r.test_sets),
  createTestSet: (name: string, description?: string) =>
    send<{ id: T.Id }>("POST", "/api/test-sets", { name, description }),
  deleteTestSet: (id: T.Id) => send<null>("DELETE", `/api/test-sets/${id}`),
  cases: (set: T.Id) => get<{ cases: T.Case[] }>(`/api/test-sets/${set}/cases`).then((r) => r.cases),
  addCases: (set: T.Id, cases: T.NewCase[]) =>
    send<{ inserted: number; duplicates: number }>("POST", `/api/test-sets/${set}/cases`, { cases }),
  updateCase: (id: T.Id, c: T.NewCase) => send<null>("PUT", `/api/cases/${id}`, c),
  deleteCase: (id: T.Id) => send<null>("DELETE", `/api/cases/${id}`),
  importCases: (
    set: T.Id,
    body: { format: "csv" | "jsonl"; content: string; vars?: string[]; expected?: string; tags?: string; dry_run: boolean },
  ) => send<T.ImportPreview>("POST", `/api/test-sets/${set}/import`, body),

  runs: () => get<{ runs: T.RunSummaryRow[] }>("/api/runs").then((r) => r.runs),
  run: (id: T.Id) => get<T.RunInfo>(`/api/runs/${id}`),
  runResults: (id: T.Id, limit?: number) =>
    get<{ targets: T.TargetRow[]; total: number; results: T.StoredResult[] }>(
      `/api/runs/${id}/results${limit != null ? `?limit=${limit}` : ""}`,
    ),
  startRun: (spec: T.RunSpec, noCache = false) =>
    send<{ job: number; run_id: T.Id }>("POST", "/api/runs", { spec, no_cache: noCache }),
  jobs: () => get<{ jobs: T.JobState[] }>("/api/jobs").then((r) => r.jobs),
  job: (id: number) => get<T.JobState>(`/api/jobs/${id}`),
  cancelJob: (id: number) => send<T.JobState>("POST", `/api/jobs/${id}/cancel`, {}),
  watchJob: (id: number, onEvent: (e: StreamEvent) => void, signal?: AbortSignal) =>
    transport.stream("GET", `/api/jobs/${id}/events`, undefined, onEvent, signal),
  playground: (spec: T.RunSpec, onEvent: (e: StreamEvent) => void, signal?: AbortSignal) =>
    transport.stream("POST", "/api/playground", { spec }, onEvent, signal),

  feedback: (resultId: T.Id, fb: T.Feedback, annotator?: string) =>
    send<{ id: T.Id }>("POST", "/api/feedback", { result_id: resultId, ...fb, annotator }),
  resultFeedback: (id: T.Id) =>
    get<{ current: T.FeedbackEvent[]; history: T.FeedbackEvent[] }>(`/api/results/${id}/feedback`),
  review: (queue: "unrated" | "disagreements", limit = 200) =>
    get<{ items: T.ReviewItem[] }>(`/api/review?queue=${queue}&limit=${limit}`).then((r) => r.items),
  history: (query: string, limit = 100) =>
    get<{ hits: T.SearchHit[] }>(`/api/history?q=${q(query)}&limit=${limit}`).then((r) => r.hits),

  exportPreview: (req: T.ExportRequest) =>
    send<{ manifest: T.Manifest; head: Record<string, string[]> }>("POST", "/api/exports", { ...req, preview: true }),
  startExport: (req: T.ExportRequest) => send<{ job: number; dir: string }>("POST", "/api/exports", req),
  /** A finished export's file, as text (for a download link or a preview). */
  exportFile: async (name: string, file: string): Promise<Blob> => {
    const path = `/api/exports/${q(name)}/files/${q(file)}`;
    if (transport.kind === "browser") {
      const r = await fetch(path, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
      if (!r.ok) throw new Error(`download failed: ${r.status}`);
      return r.blob();
    }
    const text = await transport.request<string>("GET", path);
    return new Blob([typeof text === "string" ? text : JSON.stringify(text)]);
  },

  /** The desktop app's local inference API switch; null in a browser (the page is served by it). */
  localServer: () => transport.localServer ?? null,

  settings: () => get<T.Settings>("/api/settings"),
  savePrices: (prices: Record<string, T.Price>) => send<unknown>("PUT", "/api/prices", prices),
};
