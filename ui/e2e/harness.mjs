// Starts the real parts an end-to-end test talks to: the mock LLM provider (the tests' own, as a
// program) and `benchtop serve` on 127.0.0.1 with a fresh data directory, serving the built UI.
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";

export const ROOT = resolve(import.meta.dirname, "../..");
const TARGET = process.env.CARGO_TARGET_DIR ?? join(ROOT, "target");
export const BENCHTOP = process.env.BENCHTOP_BIN ?? join(TARGET, "release/benchtop");
export const MOCK_LLM = process.env.MOCK_LLM_BIN ?? join(TARGET, "release/examples/mock_llm");
export const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
export const SCREENSHOTS = process.env.SCREENSHOTS ?? join(ROOT, "docs/screenshots");
export const MOCK_KEY = "sk-e2e-mock-key-never-shown";

/** Start `cmd` and resolve with the process and the first line it prints. */
function firstLine(cmd, args, options) {
  const child = spawn(cmd, args, { stdio: ["pipe", "pipe", "pipe"], ...options });
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  return new Promise((ok, fail) => {
    const lines = createInterface({ input: child.stdout });
    lines.once("line", (line) => ok({ child, line, stderr: () => stderr }));
    child.once("exit", (code) => fail(new Error(`${cmd} exited (${code}) before it was ready:\n${stderr}`)));
  });
}

export async function startMock(chunkDelayMs = 25) {
  const { child, line } = await firstLine(MOCK_LLM, [String(chunkDelayMs)]);
  return { child, url: line.trim(), stop: () => child.kill() };
}

/** `benchtop serve` over the committed fixtures and the default models, with a mock provider saved. */
export async function startBenchtop({ mockUrl, extraArgs = [], data = mkdtempSync(join(tmpdir(), "benchtop-e2e-")) } = {}) {
  const env = { ...process.env, BENCHTOP_DATA_DIR: data, MOCK_KEY };
  delete env.BENCHTOP_MODELS_DIR;
  const { child, line, stderr } = await firstLine(
    BENCHTOP,
    ["serve", "--listen", "127.0.0.1:0", "--models-dir", join(ROOT, "models/fixtures"), "--ui-dir", join(ROOT, "ui/dist"), ...extraArgs],
    { env },
  );
  const url = /http:\/\/[\d.:]+/.exec(line)?.[0];
  if (!url) throw new Error(`no URL in: ${line}`);
  const token = execFileSync(BENCHTOP, ["token"], { env }).toString().trim();
  const call = async (method, path, body) => {
    const r = await fetch(url + path, {
      method,
      headers: { Authorization: `Bearer ${token}`, ...(body ? { "Content-Type": "application/json" } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await r.text();
    if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${text}`);
    return text ? JSON.parse(text) : null;
  };
  if (mockUrl) {
    await call("PUT", "/api/providers/mock", { kind: "openai", base_url: `${mockUrl}/v1`, key_env: "MOCK_KEY", models: ["gpt-4o-mini"] });
  }
  return {
    url,
    token,
    data,
    call,
    stderr,
    stop: async () => {
      child.kill("SIGTERM");
      await new Promise((ok) => child.once("exit", ok));
      rmSync(data, { recursive: true, force: true });
    },
  };
}

export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
