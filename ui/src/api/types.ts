// The wire types of Benchtop's `/api` (crates/server/src/openapi.json describes them too).

export type Id = number;

export interface ApiErrorBody {
  error: { type: string; message: string };
}

export interface ModelEntry {
  name: string;
  dir: string;
  ok: boolean;
  problem?: string;
  folder?: {
    name: string;
    dir: string;
    task: { task: "embedding" | "classification" | "generation"; labels?: string[] };
    max_length: number;
    size_bytes: number;
  };
}

export interface ModelValidation {
  folder: NonNullable<ModelEntry["folder"]>;
  files: { name: string; bytes: number }[];
  inputs: string[];
  outputs: string[];
  weights_bytes: number;
  estimated_bytes: number;
  measured_bytes: number | null;
  warnings: string[];
}

export interface ProviderConfig {
  name: string;
  kind: "openai" | "anthropic" | "ollama" | string;
  base_url: string;
  key_env?: string | null;
  no_key?: boolean;
}

export interface SavedProvider {
  name: string;
  config: ProviderConfig;
  models: string[];
  key: { needed: boolean; available: boolean; source: string | null; env?: string };
}

export interface TestSet {
  id: Id;
  name: string;
  description: string | null;
  cases: number;
}

export interface Case {
  id: Id;
  test_set_id: Id;
  position: number;
  vars: Record<string, unknown>;
  expected: string | null;
  tags: string[];
}

export interface NewCase {
  vars: Record<string, unknown>;
  expected?: string | null;
  tags?: string[];
}

export interface Answer {
  output: string | null;
  label: string | null;
  scores: unknown;
  error: string | null;
  latency_ms: number | null;
  ttft_ms: number | null;
  tokens_in: number | null;
  tokens_out: number | null;
  cost_usd: number | null;
}

export interface Verdict {
  assertion: string;
  passed: boolean;
  reason: string;
}

export interface StoredResult {
  id: Id;
  case_id: Id | null;
  target_id: Id;
  input: string;
  answer: Answer;
  meta: { passed?: boolean | null; assertions?: Verdict[]; cached?: boolean } | null;
}

export interface TargetRow {
  id: Id;
  kind: "local" | "remote";
  name: string;
}

export interface RunSummaryRow {
  id: Id;
  name: string;
  kind: "batch" | "adhoc" | "traffic";
  test_set_id: Id | null;
  status: string;
  created_at: number;
  finished_at: number | null;
  results: number;
}

export interface RunInfo {
  id: Id;
  name: string;
  kind: string;
  test_set_id: Id | null;
  status: string;
  config: RunSpec;
}

export interface TargetSpec {
  name?: string;
  model: string;
  provider?: string;
  temperature?: number;
  max_tokens?: number;
}

export interface Assertion {
  type: string;
  value?: string;
  max?: number;
  threshold?: number;
  ignore_case?: boolean;
}

export interface RunSpec {
  name?: string;
  test_set?: string;
  input?: string;
  prompt?: { template?: string; system?: string };
  targets: TargetSpec[];
  assert?: Assertion[];
}

export interface TargetSummary {
  name: string;
  target_id: Id;
  cells: number;
  errors: number;
  passed: number;
  failed: number;
  cached: number;
  pass_rate: number | null;
  mean_latency_ms: number | null;
  p95_latency_ms: number | null;
  tokens_in: number;
  tokens_out: number;
  cost_usd: number | null;
}

export interface Agreement {
  a: string;
  b: string;
  compared: number;
  agreed: number;
  confusion: Record<string, Record<string, number>>;
}

export interface Summary {
  run_id: Id;
  status: string;
  targets: TargetSummary[];
  agreements: Agreement[];
}

export interface CellReport {
  result_id: Id;
  case_id: Id | null;
  target: string;
  error: string | null;
  passed: boolean | null;
  latency_ms: number | null;
}

export interface JobState {
  id: number;
  kind: "run" | "export" | "download";
  status: "running" | "done" | "failed" | "cancelled";
  done: number;
  total: number | null;
  run_id: Id | null;
  result: unknown;
  error: string | null;
}

export type Feedback =
  | { kind: "thumb"; up: boolean }
  | { kind: "rating"; stars: number }
  | { kind: "preference"; other: Id; choice: "a" | "b" | "tie"; blind?: boolean; shown_left?: Id }
  | { kind: "correction"; text?: string | null; label?: string | null }
  | { kind: "tag"; tag: string; present: boolean }
  | { kind: "note"; text: string }
  | { kind: "undo"; feedback_id: Id };

export type FeedbackEvent = Feedback & {
  id: Id;
  result_id: Id;
  source: "human" | "assertion" | "judge";
  annotator: string | null;
  created_at: number;
};

export interface ReviewItem {
  result_id: Id;
  run_id: Id;
  target: string;
  target_kind: string;
  input: string;
  output: string | null;
  label: string | null;
  error: string | null;
  expected: string | null;
  other_result_id: Id | null;
  other_target: string | null;
  other_output: string | null;
}

export interface SearchHit {
  result_id: Id;
  run_id: Id;
  target: string;
  input: string;
  output: string | null;
  label: string | null;
  created_at: number;
}

export interface Price {
  input_per_mtok: number;
  output_per_mtok: number;
}

export interface Settings {
  data_dir: string;
  log: string;
  models_dirs: string[];
  prices: Record<string, Price>;
  prices_file: string;
  version: string;
}

export type ExportFormat = "jsonl" | "csv" | "parquet" | "chat" | "kto" | "promptfoo" | "dpo" | "openai-preference";

export interface ExportFilter {
  run_id?: Id | null;
  targets?: string[];
  tags?: string[];
  min_rating?: number | null;
  has_feedback?: string | null;
  passed?: boolean | null;
  query?: string | null;
}

export interface ExportRequest {
  format: ExportFormat;
  name?: string;
  filter?: ExportFilter;
  split?: { train: number; seed?: number } | null;
  dedup?: boolean;
  overwrite?: boolean;
  preview?: boolean;
}

export interface FileEntry {
  path: string;
  split: string;
  rows: number;
  sha256: string;
  bytes: number;
}

export interface Manifest {
  format: ExportFormat;
  files: FileEntry[];
  counts: Record<string, { rows: number }>;
  skipped_duplicates: number;
  skipped_not_applicable: number;
}

export interface ImportPreview {
  columns: string[];
  count: number;
  preview?: NewCase[];
  added?: { inserted: number; duplicates: number };
  rejected: { line: number; reason: string }[];
}
