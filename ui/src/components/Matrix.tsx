import { useVirtualizer } from "@tanstack/react-virtual";
import { useRef } from "react";
import type { Id, StoredResult, TargetRow } from "../api";
import { fmtMs } from "./common";

export interface MatrixRow {
  key: string;
  input: string;
  expected: string | null;
  cells: (StoredResult | undefined)[];
}

/** The text a cell shows: a classifier's label, else the output, else the error. */
export function cellText(r: StoredResult | undefined): string {
  if (!r) return "";
  return r.answer.error ? `⚠ ${r.answer.error}` : (r.answer.label ?? r.answer.output ?? "");
}

export function cellStatus(r: StoredResult | undefined): "pass" | "fail" | "error" | "none" | "empty" {
  if (!r) return "empty";
  if (r.answer.error) return "error";
  const passed = r.meta?.passed;
  return passed === true ? "pass" : passed === false ? "fail" : "none";
}

const ROW = 64;

/**
 * Cases × targets, virtualised: only the rows in view are in the DOM, so 10,000 cells scroll as
 * smoothly as 10. Click a cell to select it (two selected cells can be diffed).
 */
export function Matrix({
  targets,
  rows,
  selected,
  onSelect,
}: {
  targets: TargetRow[];
  rows: MatrixRow[];
  selected: Id[];
  onSelect: (r: StoredResult) => void;
}) {
  const scroller = useRef<HTMLDivElement>(null);
  const virtual = useVirtualizer({
    count: rows.length,
    getScrollElement: () => scroller.current,
    estimateSize: () => ROW,
    overscan: 8,
    // Rows for a screenful are drawn on the first render, before the scroller is measured.
    initialRect: { width: 1200, height: 600 },
  });
  const grid = { gridTemplateColumns: `minmax(220px, 2fr) minmax(90px, 0.7fr) repeat(${targets.length}, minmax(160px, 1.5fr))` };
  return (
    <div className="matrix" role="table" aria-rowcount={rows.length + 1} data-testid="matrix">
      <div className="matrix-head" role="row" style={grid}>
        <div role="columnheader">Input</div>
        <div role="columnheader">Expected</div>
        {targets.map((t) => (
          <div role="columnheader" key={t.id}>
            {t.name} <span className="muted">{t.kind}</span>
          </div>
        ))}
      </div>
      <div className="matrix-body" ref={scroller}>
        <div style={{ height: virtual.getTotalSize(), position: "relative" }}>
          {virtual.getVirtualItems().map((item) => {
            const row = rows[item.index];
            return (
              <div
                key={row.key}
                role="row"
                className="matrix-row"
                style={{ ...grid, position: "absolute", top: 0, left: 0, right: 0, height: ROW, transform: `translateY(${item.start}px)` }}
              >
                <div role="cell" className="cell-input" title={row.input}>
                  {row.input}
                </div>
                <div role="cell" className="cell-expected">
                  {row.expected ?? ""}
                </div>
                {row.cells.map((r, i) => (
                  <div
                    role="cell"
                    key={i}
                    className={`cell ${cellStatus(r)} ${r && selected.includes(r.id) ? "selected" : ""}`}
                    onClick={() => r && onSelect(r)}
                    title={cellText(r)}
                    data-result={r?.id}
                  >
                    <div className="cell-text">{cellText(r)}</div>
                    {r && (
                      <div className="cell-meta">
                        {fmtMs(r.answer.latency_ms)}
                        {r.answer.tokens_out != null && ` · ${r.answer.tokens_out} tok`}
                        {r.answer.cost_usd != null && ` · $${r.answer.cost_usd.toFixed(4)}`}
                      </div>
                    )}
                  </div>
                ))}
              </div>
            );
          })}
        </div>
      </div>
    </div>
  );
}
