// UI benchmarks (docs/benchmarks.md, "Workbench UI"): the production bundle's gzipped JS, and the
// runs matrix of 10,000 results (5,000 cases × 2 targets) in Chromium: time from navigation to its
// first screen of rows, and frame times while scrolling through it.
// Run by `./dev bench` (needs the release `benchtop`, the `fill_matrix` example and ui/dist).
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { chromium } from "playwright-core";
import { CHROMIUM, CHROMIUM_ARGS, ROOT, startBenchtop } from "./harness.mjs";

const TARGET = process.env.CARGO_TARGET_DIR ?? join(ROOT, "target");
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const assets = join(ROOT, "ui/dist/assets");
const js = readdirSync(assets).filter((f) => f.endsWith(".js"));
const gz = js.reduce((sum, f) => sum + gzipSync(readFileSync(join(assets, f))).length, 0);
const raw = js.reduce((sum, f) => sum + readFileSync(join(assets, f)).length, 0);
console.log(`bundle: ${js.length} JS file(s), ${(raw / 1024).toFixed(0)} KB, ${(gz / 1024).toFixed(0)} KB gzipped (target <= 600 KB)`);

const data = mkdtempSync(join(tmpdir(), "benchtop-matrix-"));
const runId = execFileSync(join(TARGET, "release/examples/fill_matrix"), [data, "5000"]).toString().trim();
const server = await startBenchtop({ data });
const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
try {
  const firstScreen = [];
  const fetches = [];
  for (let i = 0; i < 6; i++) {
    const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
    // The time the first row is painted: the frame after it enters the DOM.
    await page.addInitScript(() => {
      new MutationObserver((_, observer) => {
        if (document.querySelector(".matrix-row")) {
          observer.disconnect();
          requestAnimationFrame(() => (window.__firstRow = performance.now()));
        }
      }).observe(document, { subtree: true, childList: true });
    });
    await page.goto(`${server.url}/runs/${runId}#token=${server.token}`);
    await page.waitForFunction(() => window.__firstRow !== undefined, null, { timeout: 30_000 });
    const t = await page.evaluate(() => window.__firstRow);
    const fetch = await page.evaluate(
      () => performance.getEntriesByType("resource").find((e) => e.name.includes("/results"))?.duration ?? 0,
    );
    if (i > 0) (firstScreen.push(t), fetches.push(fetch)); // the first load warms the browser's cache
    if (i === 5) {
      await page.locator("table.aggregates").waitFor({ timeout: 60_000 }); // all 10,000 loaded
      const rows = await page.locator(".matrix-row").count();
      // Scroll the 5,000 rows top to bottom, 600 px per frame, timing each frame.
      const frames = await page.evaluate(async () => {
        const body = document.querySelector(".matrix-body");
        const times = [];
        let last = performance.now();
        while (body.scrollTop + body.clientHeight < body.scrollHeight - 1) {
          body.scrollTop += 600;
          await new Promise((r) => requestAnimationFrame(r));
          const now = performance.now();
          times.push(now - last);
          last = now;
        }
        return times;
      });
      const sorted = [...frames].sort((a, b) => a - b);
      console.log(`matrix: ${rows} rows in the DOM of 5,000; scrolled in ${frames.length} frames, median ${median(frames).toFixed(1)} ms, p95 ${sorted[Math.floor(sorted.length * 0.95)].toFixed(1)} ms, worst ${sorted[sorted.length - 1].toFixed(1)} ms`);
    }
    await page.close();
  }
  console.log(
    `matrix first screen (10,000 results): median ${median(firstScreen).toFixed(0)} ms from navigation (min ${Math.min(...firstScreen).toFixed(0)}, max ${Math.max(...firstScreen).toFixed(0)}; the results request itself median ${median(fetches).toFixed(0)} ms) over ${firstScreen.length} loads (target <= 300 ms)`,
  );
} finally {
  await browser.close();
  await server.stop();
}
