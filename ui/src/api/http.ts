import { createParser } from "eventsource-parser";
import { ApiError, errorFrom, type StreamEvent, type Transport } from "./transport";

const TOKEN_KEY = "benchtop.token";

/**
 * The token `benchtop serve --open` passes in the URL fragment (never sent to a server), kept in
 * this browser's local storage and taken out of the address bar.
 */
export function takeToken(): string | null {
  const match = /(?:^#|&)token=([^&]+)/.exec(window.location.hash);
  if (match) {
    const token = decodeURIComponent(match[1]);
    localStorage.setItem(TOKEN_KEY, token);
    history.replaceState(null, "", window.location.pathname + window.location.search);
    return token;
  }
  return localStorage.getItem(TOKEN_KEY);
}

export function saveToken(token: string) {
  localStorage.setItem(TOKEN_KEY, token.trim());
}

/** A response's body as JSON; null when it is empty or not JSON. */
async function jsonBody(r: Response): Promise<unknown> {
  const text = await r.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

export class HttpTransport implements Transport {
  readonly kind = "browser" as const;
  constructor(
    private token: () => string | null,
    private base = "",
  ) {}

  private headers(json: boolean): HeadersInit {
    const h: Record<string, string> = {};
    const token = this.token();
    if (token) h.Authorization = `Bearer ${token}`;
    if (json) h["Content-Type"] = "application/json";
    return h;
  }

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    let r: Response;
    try {
      r = await fetch(this.base + path, {
        method,
        headers: this.headers(body !== undefined),
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      throw new ApiError(0, "network", `Benchtop is not reachable (${String(e)}); is \`benchtop serve\` running?`);
    }
    const parsed = await jsonBody(r);
    if (!r.ok) throw errorFrom(r.status, parsed);
    return parsed as T;
  }

  async stream(
    method: string,
    path: string,
    body: unknown,
    onEvent: (e: StreamEvent) => void,
    signal?: AbortSignal,
  ): Promise<void> {
    let r: Response;
    try {
      r = await fetch(this.base + path, {
        method,
        headers: { ...this.headers(body !== undefined), Accept: "text/event-stream" },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
      });
    } catch (e) {
      if (signal?.aborted) return;
      throw new ApiError(0, "network", `Benchtop is not reachable (${String(e)})`);
    }
    if (!r.ok || !r.body) throw errorFrom(r.status, await jsonBody(r));
    const parser = createParser({
      onEvent(message) {
        let data: unknown = message.data;
        try {
          data = JSON.parse(message.data);
        } catch {
          // keep the text
        }
        onEvent({ event: message.event ?? "message", data });
      },
    });
    const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        parser.feed(value);
      }
    } catch (e) {
      if (!signal?.aborted) throw new ApiError(0, "network", `the stream broke off (${String(e)})`);
    }
  }

  ready(): void {}

  downloadUrl(): string | null {
    // Downloads need the token header, so they are fetched (see api.download).
    return null;
  }
}
