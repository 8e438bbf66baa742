import { diffWords } from "diff";

/** Word-level differences between two outputs. */
export function Diff({ a, b, left, right }: { a: string; b: string; left: string; right: string }) {
  const parts = diffWords(a, b);
  return (
    <div className="diff" data-testid="diff">
      <div className="diff-legend">
        <span className="del">− {left}</span> <span className="ins">+ {right}</span>
      </div>
      <pre>
        {parts.map((p, i) => (
          <span key={i} className={p.added ? "ins" : p.removed ? "del" : ""}>
            {p.value}
          </span>
        ))}
      </pre>
    </div>
  );
}
