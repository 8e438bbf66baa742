import { describe, expect, it } from "vitest";
import { errorFrom } from "./api/transport";
import { parseRoute } from "./App";
import { parsePasted } from "./pages/TestSets";

describe("parseRoute", () => {
  it("maps paths to pages and ids", () => {
    expect(parseRoute("/runs/12")).toEqual({ page: "runs", id: 12 });
    expect(parseRoute("/review")).toEqual({ page: "review", id: null });
    expect(parseRoute("/")).toEqual({ page: "playground", id: null });
    expect(parseRoute("/nonsense/x")).toEqual({ page: "playground", id: null });
  });
});

describe("parsePasted", () => {
  it("reads tab-separated spreadsheet rows in the table's column order", () => {
    const cases = parsePasted("refund me\tbilling\tmoney, urgent\r\nit crashes\ttechnical\n\n\tno text\n", ["text"]);
    expect(cases).toEqual([
      { vars: { text: "refund me" }, expected: "billing", tags: ["money", "urgent"] },
      { vars: { text: "it crashes" }, expected: "technical", tags: [] },
    ]);
  });

  it("fills several variables in order", () => {
    expect(parsePasted("Ann\thello\tgreeting", ["name", "text"])).toEqual([
      { vars: { name: "Ann", text: "hello" }, expected: "greeting", tags: [] },
    ]);
  });
});

describe("errorFrom", () => {
  it("keeps the server's error type and message", () => {
    const e = errorFrom(422, { error: { type: "validation_error", message: "`text` is too long" } });
    expect([e.status, e.type, e.message]).toEqual([422, "validation_error", "`text` is too long"]);
  });

  it("says something useful for a body that is not an error", () => {
    expect(errorFrom(502, "<html>bad gateway</html>").message).toBe("the server answered 502");
  });
});
