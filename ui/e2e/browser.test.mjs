// Browser end-to-end tests: Debian's Chromium (driven by playwright-core) against a real
// `benchtop serve` with the real models, a real feedback log and the mock LLM provider.
// Each page is photographed into docs/screenshots/ on the way.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { CHROMIUM, CHROMIUM_ARGS, MOCK_KEY, ROOT, SCREENSHOTS, startBenchtop, startMock } from "./harness.mjs";

let mock, server, browser, page;
const pageErrors = [];

before(async () => {
  mock = await startMock(25);
  server = await startBenchtop({ mockUrl: mock.url });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 }, colorScheme: "light" });
  page = await context.newPage();
  page.on("pageerror", (e) => pageErrors.push(String(e)));
  page.on("dialog", (d) => void d.accept());
  mkdirSync(SCREENSHOTS, { recursive: true });
  // Signed in through the URL fragment, as `benchtop serve --open` does.
  await page.goto(`${server.url}/playground#token=${server.token}`);
  await page.getByRole("link", { name: "Playground" }).waitFor();
  assert.ok(!page.url().includes("token="), "the token leaves the address bar");
});

after(async () => {
  await browser?.close();
  await server?.stop();
  mock?.stop();
});

const shot = (name) => page.screenshot({ path: join(SCREENSHOTS, `${name}.png`) });
const column = (target) => page.locator(`article.answer[data-target="${target}"]`);

async function ask(text, targets) {
  await page.getByRole("link", { name: "Playground" }).click();
  for (const t of ["support-triage", "tiny-qwen2", "mock/gpt-4o-mini"]) {
    const box = page.locator(`input[data-target="${t}"]`);
    if ((await box.isChecked()) !== targets.includes(t)) await box.click();
  }
  await page.getByTestId("playground-input").fill(text);
  await page.getByRole("button", { name: /^Run on/ }).click();
  for (const t of targets) await column(t).locator("footer").waitFor({ timeout: 30_000 });
}

test("the playground compares targets side by side, streaming, and records feedback that survives a reload", async () => {
  // Count how the remote answer grows while it streams (the mock sends a piece every 25 ms).
  await page.evaluate(() => {
    window.__growth = new Set();
    new MutationObserver(() => {
      const el = document.querySelector('article.answer[data-target="mock/gpt-4o-mini"] .output-md, article.answer[data-target="mock/gpt-4o-mini"] .output-text');
      if (el) window.__growth.add(el.textContent.length);
    }).observe(document.body, { subtree: true, childList: true, characterData: true });
  });
  const question = "My card was charged twice for the annual plan, please refund one of the charges";
  await ask(question, ["support-triage", "tiny-qwen2", "mock/gpt-4o-mini"]);
  const growth = await page.evaluate(() => window.__growth.size);
  assert.ok(growth >= 3, `the remote answer arrived in pieces (${growth} lengths seen)`);
  assert.equal(await column("support-triage").locator(".label").textContent(), "billing");
  const remote = await column("mock/gpt-4o-mini").locator(".output-md").textContent();
  assert.ok(remote.includes(`[gpt-4o-mini] ${question}`), remote);
  assert.match(await column("mock/gpt-4o-mini").locator("footer").textContent(), /ms/);
  assert.match(await column("support-triage").locator("footer").textContent(), /\$0 \(local\)/);
  assert.ok((await column("tiny-qwen2").locator(".output-md").textContent()).length > 0);
  await shot("playground");

  // Feedback on the remote answer: a thumb, four stars and a tag.
  const bar = column("mock/gpt-4o-mini").locator(".feedback");
  await bar.getByRole("button", { name: "Thumbs up" }).click();
  await bar.getByRole("radio", { name: "4 stars" }).click();
  await bar.getByRole("button", { name: "Tag" }).click();
  await bar.getByRole("textbox").fill("refunds");
  await bar.getByRole("textbox").press("Enter");
  await bar.locator(".badge", { hasText: "#refunds" }).waitFor();
  const resultId = Number(await bar.getAttribute("data-result"));
  const recorded = await server.call("GET", `/api/results/${resultId}/feedback`);
  const kinds = recorded.current.map((e) => e.kind).sort();
  assert.deepEqual(kinds, ["rating", "tag", "thumb"]);

  // After a reload, History finds the answer and shows the feedback in force.
  await page.reload();
  await page.getByRole("link", { name: "History" }).click();
  await page.getByLabel("Search the log").fill("annual plan refund");
  await page.getByRole("button", { name: "Search" }).click();
  const hit = page.locator(`li[data-result="${resultId}"]`);
  await hit.locator("button.hit").click();
  await hit.getByRole("radio", { name: "4 stars" }).and(page.locator('[aria-checked="true"]')).waitFor();
  assert.equal(await hit.getByRole("button", { name: "Thumbs up" }).getAttribute("aria-pressed"), "true");
  await hit.locator(".badge", { hasText: "#refunds" }).waitFor();
  await shot("history");

  // The key never reaches the page, the log or an error.
  assert.ok(!(await page.content()).includes(MOCK_KEY));
});

test("a model's HTML output is rendered inert", async () => {
  await page.evaluate(() => (window.__xss = 0));
  const evil = 'Hi <img src=x onerror="window.__xss=1"> <script>window.__xss=2</script> [link](javascript:window.__xss=3) ![pic](javascript:window.__xss=4)';
  await ask(evil, ["mock/gpt-4o-mini"]);
  const out = column("mock/gpt-4o-mini").locator(".output-md");
  await out.locator("a").first().click().catch(() => undefined);
  assert.equal(await page.evaluate(() => window.__xss), 0, "no script from the output ran");
  assert.equal(await out.locator("img, script").count(), 0, "no element came from the output's HTML");
  const href = await out.locator("a").first().getAttribute("href");
  assert.ok(!href || !href.startsWith("javascript:"), `script link neutralised: ${href}`);
  // With markdown off it is plain text, shown as written.
  await page.getByLabel("Render markdown").uncheck();
  assert.ok((await column("mock/gpt-4o-mini").locator(".output-text").textContent()).includes('<img src=x onerror="window.__xss=1">'));
  assert.equal(await page.evaluate(() => window.__xss), 0);
  await page.getByLabel("Render markdown").check();
});

test("a test set is built in the table editor and a run over it shows assertions, aggregates and a diff", async () => {
  await page.getByRole("link", { name: "Test sets" }).click();
  await page.getByLabel("New test set name").fill("triage-e2e");
  await page.getByRole("button", { name: "Create" }).click();
  await page.getByRole("heading", { name: "triage-e2e" }).waitFor();
  await page.getByRole("tab", { name: "Paste rows" }).click();
  await page.getByLabel("Pasted rows").fill(
    [
      "I was charged twice this month\tbilling\tmoney",
      "The app crashes when I open settings\ttechnical",
      "How do I change my password?\taccount",
      "Do you offer discounts for 200 seats?\tsales",
    ].join("\n"),
  );
  await page.getByRole("button", { name: "Add 4 cases" }).click();
  await page.getByText("4 added").waitFor();
  await page.getByRole("tab", { name: "Cases" }).click();
  // Edit one case in place, and add one row.
  const cell = page.getByTestId("cases").locator("tbody tr").nth(3).getByLabel("expected");
  await cell.fill("billing");
  await cell.press("Enter");
  await page.getByText("Saved").waitFor();
  await page.getByLabel("new text").fill("Where can I download my invoice?");
  await page.getByLabel("new expected").fill("billing");
  await page.getByRole("button", { name: "Add", exact: true }).click();
  await page.getByText("1 added").waitFor();
  const cases = (await server.call("GET", "/api/test-sets")).test_sets.find((s) => s.name === "triage-e2e");
  assert.equal(cases.cases, 5);
  await shot("test-sets");

  await page.getByRole("link", { name: "Runs" }).click();
  await page.getByRole("button", { name: "New run" }).click();
  await page.getByTestId("run-test-set").selectOption("triage-e2e");
  await page.locator('input[data-target="support-triage"]').check();
  await page.locator('input[data-target="mock/gpt-4o-mini"]').check();
  await page.getByRole("button", { name: "Start run" }).click();
  await page.locator(".run-head .badge", { hasText: "done" }).waitFor({ timeout: 60_000 });
  const matrix = page.getByTestId("matrix");
  await matrix.locator(".matrix-row").nth(4).waitFor();
  assert.equal(await matrix.locator(".matrix-row").count(), 5);
  // The classifier's labels are checked against the expected ones; the edited case now fails.
  const passes = await matrix.locator(".cell.pass").count();
  const fails = await matrix.locator(".cell.fail").count();
  assert.equal(passes + fails, 10);
  assert.ok(fails >= 1 && passes >= 3, `${passes} passed, ${fails} failed`);
  const aggregates = await page.locator("table.aggregates").textContent();
  assert.match(aggregates, /support-triage/);
  assert.match(aggregates, /%/);
  await page.locator("figure.confusion").first().waitFor();
  // Two cells of one row → their diff.
  const row = matrix.locator(".matrix-row").first();
  await row.locator(".cell").nth(0).click();
  await row.locator(".cell").nth(1).click();
  await page.getByTestId("diff").waitFor();
  await page.getByRole("button", { name: "failed", exact: true }).click();
  assert.ok((await matrix.locator(".matrix-row").count()) >= 1);
  await page.getByRole("button", { name: "all", exact: true }).click();
  await shot("runs");
});

test("the review queue is worked by keyboard alone", async () => {
  await page.getByRole("link", { name: "Review" }).click();
  const item = page.getByTestId("review-item");
  await item.waitFor();
  const first = Number(await item.getAttribute("data-result"));
  await shot("review");
  await page.keyboard.press("4");
  await page.locator(`[data-testid="review-item"]:not([data-result="${first}"])`).waitFor();
  const second = Number(await item.getAttribute("data-result"));
  await page.keyboard.press("d");
  await page.locator(`[data-testid="review-item"]:not([data-result="${second}"])`).waitFor();
  const third = Number(await item.getAttribute("data-result"));
  await page.keyboard.press("e");
  await page.keyboard.press("Control+a");
  await page.keyboard.type("A better answer");
  await page.keyboard.press("Enter");
  await page.locator(`[data-testid="review-item"]:not([data-result="${third}"])`).waitFor();
  await page.keyboard.press("k");
  await page.locator(`[data-testid="review-item"][data-result="${third}"]`).waitFor();
  const fb = async (id) => (await server.call("GET", `/api/results/${id}/feedback`)).current.filter((e) => e.source === "human");
  assert.deepEqual((await fb(first)).map((e) => [e.kind, e.stars]), [["rating", 4]]);
  assert.deepEqual((await fb(second)).map((e) => [e.kind, e.up]), [["thumb", false]]);
  assert.deepEqual((await fb(third)).map((e) => [e.kind, e.text]), [["correction", "A better answer"]]);

  // Local vs remote: the classifier's label against the LLM's answer; `b` prefers the LLM's.
  await page.getByRole("tab", { name: "Local vs remote" }).click();
  await item.locator("h3", { hasText: "B ·" }).waitFor();
  const local = Number(await item.getAttribute("data-result"));
  await page.keyboard.press("b");
  await page.locator(`[data-testid="review-item"] .badge`, { hasText: "preferred b" }).or(page.locator(`[data-testid="review-item"]:not([data-result="${local}"])`)).first().waitFor();
  const pref = (await fb(local)).find((e) => e.kind === "preference");
  assert.equal(pref?.choice, "b", JSON.stringify(await fb(local)));
  assert.ok(pref.other > 0 && pref.other !== local);
});

test("an export is previewed, written, and its files hold the rows", async () => {
  const runs = (await server.call("GET", "/api/runs")).runs;
  const run = runs.find((r) => r.name === "run");
  await page.getByRole("link", { name: "Export" }).click();
  await page.getByTestId("export-format").selectOption("jsonl");
  await page.getByTestId("export-run").selectOption(String(run.id));
  await page.getByRole("button", { name: "Preview" }).click();
  const preview = page.getByTestId("export-preview");
  await preview.waitFor();
  assert.match(await preview.textContent(), /all: 10 rows|10 rows/);
  await page.getByLabel("Folder name").fill("e2e-export");
  await page.getByRole("button", { name: "Export", exact: true }).click();
  const result = page.getByTestId("export-result");
  await result.waitFor();
  await shot("export");
  const manifest = JSON.parse(readFileSync(join(server.data, "exports/e2e-export/manifest.json"), "utf8"));
  const file = manifest.files[0];
  assert.equal(file.rows, 10);
  const rows = readFileSync(join(server.data, "exports/e2e-export", file.path), "utf8").trim().split("\n").map((l) => JSON.parse(l));
  assert.equal(rows.length, 10);
  assert.ok(rows.some((r) => JSON.stringify(r).includes("I was charged twice this month")));
  assert.ok(!readFileSync(join(server.data, "exports/e2e-export", file.path), "utf8").includes(MOCK_KEY));
  // The file can be downloaded from the page.
  const [download] = await Promise.all([page.waitForEvent("download"), result.getByRole("button", { name: file.path }).click()]);
  assert.equal(download.suggestedFilename(), file.path.split("/").pop());
});

test("settings show models (and add one), providers with where their key comes from, and prices; dark theme works", async () => {
  await page.getByRole("link", { name: "Settings" }).click();
  await page.locator('tr[data-provider="mock"]').getByText("from env MOCK_KEY").waitFor();
  await page.getByRole("cell", { name: "support-triage" }).first().waitFor();
  // A model folder: a wrong path says what is wrong; a real one is validated, then added.
  await page.getByLabel("Model folder").fill("/nonexistent/model");
  await page.getByRole("button", { name: "Validate" }).click();
  await page.locator(".add-model .error").waitFor();
  await page.getByLabel("Model folder").fill(join(ROOT, "models/fixtures/tiny-multilabel"));
  await page.getByLabel("Model name").fill("my-multilabel");
  await page.getByRole("button", { name: "Validate" }).click();
  assert.match(await page.getByTestId("model-validation").textContent(), /classification/);
  await page.getByRole("button", { name: "Add", exact: true }).click();
  await page.getByRole("cell", { name: "my-multilabel", exact: true }).waitFor();
  const models = (await server.call("GET", "/api/models")).models.map((m) => m.name);
  assert.ok(models.includes("my-multilabel"), models.join(", "));
  await shot("settings");
  await page.getByRole("button", { name: "Switch theme" }).click();
  assert.equal(await page.evaluate(() => document.documentElement.dataset.theme), "dark");
  await page.getByRole("link", { name: "Playground" }).click();
  await shot("playground-dark");
  await page.getByRole("button", { name: "Switch theme" }).click();
  assert.deepEqual(pageErrors, [], "no uncaught errors on any page");
});
