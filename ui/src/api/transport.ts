// How the UI reaches Benchtop. Two implementations of one small interface: HTTP (fetch + SSE) in
// a browser against `benchtop serve`, Tauri IPC (invoke + Channels) inside the desktop window.
// Components never see either: they call the functions in `./index.ts`.

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    message: string,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

/** One server-sent event (or its IPC equivalent): its name and parsed JSON data. */
export interface StreamEvent {
  event: string;
  data: unknown;
}

export interface Transport {
  /** `kind` names the transport in the UI ("desktop" or "browser"). */
  readonly kind: "desktop" | "browser";
  request<T>(method: string, path: string, body?: unknown): Promise<T>;
  /** Calls `onEvent` for each event until the stream ends, the server fails, or `signal` aborts. */
  stream(
    method: string,
    path: string,
    body: unknown,
    onEvent: (e: StreamEvent) => void,
    signal?: AbortSignal,
  ): Promise<void>;
  /** A URL the browser can download a file from (or null when it must be fetched). */
  downloadUrl(path: string): string | null;
  /** The first page is interactive (the desktop shell records the cold-start time). */
  ready(): void;
  /** The desktop app's switch for the local inference API (absent in a browser). */
  readonly localServer?: {
    status(): Promise<LocalServer>;
    set(on: boolean): Promise<LocalServer>;
  };
}

/** The local inference API the desktop app runs on request. */
export interface LocalServer {
  running: boolean;
  url: string | null;
  token: string | null;
}

/** Turns an error answer's body into an ApiError, whatever it holds. */
export function errorFrom(status: number, body: unknown): ApiError {
  const err = (body as { error?: { type?: unknown; message?: unknown } } | null)?.error;
  if (err && typeof err.message === "string") {
    return new ApiError(status, typeof err.type === "string" ? err.type : "error", err.message);
  }
  return new ApiError(status, "error", `the server answered ${status}`);
}
