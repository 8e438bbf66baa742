import { Channel, invoke } from "@tauri-apps/api/core";
import { ApiError, errorFrom, type LocalServer, type StreamEvent, type Transport } from "./transport";

/** What the desktop shell's `api` command answers. */
interface IpcResponse {
  status: number;
  body: unknown;
}

/** True inside the Tauri window. */
export function inDesktop(): boolean {
  return typeof window !== "undefined" && "__TAURI_INTERNALS__" in window;
}

/**
 * Tauri IPC: `api` runs one request through the same handlers `benchtop serve` uses, in process;
 * `api_stream` sends a streamed answer's events over a Channel; `api_cancel` stops one.
 */
export class TauriTransport implements Transport {
  readonly kind = "desktop" as const;
  private next = 1;

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    let r: IpcResponse;
    try {
      r = await invoke<IpcResponse>("api", { method, path, body: body ?? null });
    } catch (e) {
      throw new ApiError(0, "ipc", `the desktop shell refused the call: ${String(e)}`);
    }
    if (r.status >= 400) throw errorFrom(r.status, r.body);
    return r.body as T;
  }

  async stream(
    method: string,
    path: string,
    body: unknown,
    onEvent: (e: StreamEvent) => void,
    signal?: AbortSignal,
  ): Promise<void> {
    const id = this.next++;
    // Channel messages can still be in flight when the command returns: the shell ends every
    // stream with an `__end` event, and this waits for it.
    let ended: () => void = () => undefined;
    const end = new Promise<void>((resolve) => (ended = resolve));
    const events = new Channel<StreamEvent>();
    events.onmessage = (e) => (e.event === "__end" ? ended() : onEvent(e));
    const abort = () => void invoke("api_cancel", { id }).catch(() => undefined);
    signal?.addEventListener("abort", abort, { once: true });
    try {
      const r = await invoke<IpcResponse>("api_stream", { id, method, path, body: body ?? null, events });
      if (r.status >= 400) throw errorFrom(r.status, r.body);
      await end;
    } catch (e) {
      if (e instanceof ApiError) throw e;
      throw new ApiError(0, "ipc", `the desktop shell refused the call: ${String(e)}`);
    } finally {
      signal?.removeEventListener("abort", abort);
    }
  }

  readonly localServer = {
    status: () => invoke<LocalServer>("server_status"),
    set: (on: boolean) =>
      invoke<LocalServer>("server_set", { on }).catch((e) => {
        throw new ApiError(0, "server", String(e));
      }),
  };

  ready(): void {
    void invoke("ui_ready").catch(() => undefined);
  }

  downloadUrl(): string | null {
    return null;
  }
}
