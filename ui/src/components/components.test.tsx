import { render, waitFor } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import type { StoredResult, TargetRow } from "../api";
import { statsFor } from "./Charts";
import { Output } from "./Markdown";
import { Matrix, cellStatus, type MatrixRow } from "./Matrix";

const result = (id: number, target: number, over: Partial<StoredResult["answer"]> = {}, passed?: boolean): StoredResult => ({
  id,
  case_id: id,
  target_id: target,
  input: `input ${id}`,
  answer: { output: `out ${id}`, label: null, scores: null, error: null, latency_ms: id, ttft_ms: null, tokens_in: 1, tokens_out: 2, cost_usd: null, ...over },
  meta: passed === undefined ? {} : { passed },
});

describe("Output", () => {
  it("never turns a model's HTML into elements", async () => {
    (window as unknown as { __xss: number }).__xss = 0;
    const evil = 'x <img src=x onerror="window.__xss=1"> <script>window.__xss=2</script> <b>bold</b> [a](javascript:window.__xss=3)';
    const md = render(<Output text={evil} markdown />);
    await waitFor(() => expect(md.container.querySelector(".output-md")).not.toBeNull());
    expect(md.container.querySelector("img, script, b")).toBeNull();
    const link = md.container.querySelector("a");
    expect(link?.getAttribute("href") ?? "").not.toMatch(/^javascript:/);
    const plain = render(<Output text={evil} markdown={false} />);
    expect(plain.container.querySelector("img, script, b")).toBeNull();
    expect(plain.container.textContent).toContain('<img src=x onerror="window.__xss=1">');
    expect((window as unknown as { __xss: number }).__xss).toBe(0);
  });

  it("renders markdown structure", async () => {
    const { container } = render(<Output text={"# Title\n\n- one\n- two\n\n`code`"} markdown />);
    await waitFor(() => expect(container.querySelector("h1")).not.toBeNull());
    expect(container.querySelector("h1")?.textContent).toBe("Title");
    expect(container.querySelectorAll("li")).toHaveLength(2);
    expect(container.querySelector("code")?.textContent).toBe("code");
  });
});

describe("Matrix", () => {
  it("keeps only the rows in view in the DOM for 10,000 cells", () => {
    // jsdom does no layout: give elements the size a 600-px-high scroller would have.
    Object.defineProperty(HTMLElement.prototype, "clientHeight", { configurable: true, get: () => 600 });
    Object.defineProperty(HTMLElement.prototype, "clientWidth", { configurable: true, get: () => 1200 });
    const targets: TargetRow[] = [
      { id: 1, kind: "local", name: "a" },
      { id: 2, kind: "remote", name: "b" },
    ];
    const rows: MatrixRow[] = Array.from({ length: 5000 }, (_, i) => ({
      key: `c${i}`,
      input: `case ${i}`,
      expected: null,
      cells: [result(2 * i, 1), result(2 * i + 1, 2)],
    }));
    const { container } = render(<Matrix targets={targets} rows={rows} selected={[]} onSelect={() => undefined} />);
    const rendered = container.querySelectorAll(".matrix-row").length;
    expect(rendered).toBeGreaterThan(0);
    expect(rendered).toBeLessThan(60);
    expect(container.querySelector("[role=table]")?.getAttribute("aria-rowcount")).toBe("5001");
  });

  it("colours cells by their assertions and errors", () => {
    expect(cellStatus(result(1, 1, {}, true))).toBe("pass");
    expect(cellStatus(result(1, 1, {}, false))).toBe("fail");
    expect(cellStatus(result(1, 1, { error: "timeout" }, false))).toBe("error");
    expect(cellStatus(result(1, 1))).toBe("none");
    expect(cellStatus(undefined)).toBe("empty");
  });
});

describe("statsFor", () => {
  it("computes pass rate, mean and p95 latency, tokens and cost per target", () => {
    const t: TargetRow = { id: 7, kind: "remote", name: "llm" };
    const results = Array.from({ length: 20 }, (_, i) => result(i + 1, 7, { cost_usd: 0.5 }, i < 15));
    results.push(result(99, 8));
    const s = statsFor(t, results);
    expect(s.cells).toBe(20);
    expect(s.passRate).toBeCloseTo(0.75);
    expect(s.meanMs).toBeCloseTo(10.5);
    expect(s.p95Ms).toBe(20);
    expect(s.tokensOut).toBe(40);
    expect(s.cost).toBeCloseTo(10);
  });
});
