import { useCallback, useEffect, useState } from "react";
import { api, type ReviewItem } from "../api";
import { Empty, ErrorNote, useLoad } from "../components/common";
import { Output } from "../components/Markdown";

export const REVIEW_KEYS: [string, string][] = [
  ["j / k", "next / previous"],
  ["1 – 5", "rate"],
  ["u / d", "thumbs up / down"],
  ["a / b / t", "prefer this answer (A) / the other (B) / tie — disagreements"],
  ["e", "correct the answer"],
  ["g", "set the gold label"],
  ["n", "add a note"],
  ["Esc", "close the editor"],
];

/** A keyboard-driven review queue: unrated results, or local-vs-remote disagreements. */
export function Review() {
  const [queue, setQueue] = useState<"unrated" | "disagreements">("unrated");
  const items = useLoad(() => api.review(queue), [queue]);
  const [index, setIndex] = useState(0);
  const [done, setDone] = useState<Record<number, string>>({});
  const [editing, setEditing] = useState<"correction" | "gold" | "note" | null>(null);
  const [draft, setDraft] = useState("");
  const [error, setError] = useState<unknown>(null);
  const list = items.data ?? [];
  const item: ReviewItem | undefined = list[index];

  useEffect(() => {
    setIndex(0);
    setDone({});
  }, [queue]);

  const record = useCallback(
    async (what: string, fb: Parameters<typeof api.feedback>[1]) => {
      if (!item) return;
      try {
        await api.feedback(item.result_id, fb, "review");
        setDone((d) => ({ ...d, [item.result_id]: what }));
        setError(null);
        setIndex((i) => Math.min(i + 1, list.length - 1));
      } catch (e) {
        setError(e);
      }
    },
    [item, list.length],
  );

  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (editing || e.ctrlKey || e.metaKey || e.altKey) return;
      const target = e.target as HTMLElement;
      if (["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName)) return;
      if (!item) return;
      const k = e.key;
      if (k === "j") setIndex((i) => Math.min(i + 1, list.length - 1));
      else if (k === "k") setIndex((i) => Math.max(i - 1, 0));
      else if (/^[1-5]$/.test(k)) void record(`rated ${k}`, { kind: "rating", stars: Number(k) });
      else if (k === "u") void record("thumb up", { kind: "thumb", up: true });
      else if (k === "d") void record("thumb down", { kind: "thumb", up: false });
      else if ((k === "a" || k === "b" || k === "t") && item.other_result_id != null) {
        const choice = k === "t" ? "tie" : k;
        void record(`preferred ${choice}`, { kind: "preference", other: item.other_result_id, choice, blind: false, shown_left: item.result_id });
      } else if (k === "e") (setEditing("correction"), setDraft(item.output ?? item.label ?? ""));
      else if (k === "g") (setEditing("gold"), setDraft(item.expected ?? item.label ?? ""));
      else if (k === "n") (setEditing("note"), setDraft(""));
      else return;
      e.preventDefault();
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [item, editing, list.length, record]);

  const save = () => {
    const text = draft.trim();
    if (text && editing === "correction") void record("corrected", { kind: "correction", text });
    if (text && editing === "gold") void record(`gold: ${text}`, { kind: "correction", label: text });
    if (text && editing === "note") void record("noted", { kind: "note", text });
    setEditing(null);
  };

  return (
    <div className="page review">
      <aside className="sidebar">
        <div className="tabs" role="tablist">
          {(["unrated", "disagreements"] as const).map((q) => (
            <button key={q} role="tab" aria-selected={queue === q} className={queue === q ? "on" : ""} onClick={() => setQueue(q)}>
              {q === "unrated" ? "Unrated" : "Local vs remote"}
            </button>
          ))}
        </div>
        <table className="keys">
          <caption>Keyboard</caption>
          <tbody>
            {REVIEW_KEYS.map(([k, what]) => (
              <tr key={k}>
                <td>
                  <kbd>{k}</kbd>
                </td>
                <td>{what}</td>
              </tr>
            ))}
          </tbody>
        </table>
        <div className="muted">
          {Object.keys(done).length} reviewed · {list.length} in the queue
        </div>
      </aside>
      <section className="main">
        <ErrorNote error={items.error ?? error} onRetry={items.reload} />
        {!items.loading && list.length === 0 && (
          <Empty title={queue === "unrated" ? "Nothing left to review" : "No disagreements"}>
            <p>
              {queue === "unrated"
                ? "Every recorded answer has feedback. Run a test set or use the playground to get more."
                : "Local and remote targets agreed on every labelled case. Run a test set over a local classifier and an LLM to find disagreements."}
            </p>
          </Empty>
        )}
        {item && (
          <article className="review-item" data-result={item.result_id} data-testid="review-item">
            <header>
              <span className="muted">
                {index + 1} / {list.length} · run #{item.run_id} · result #{item.result_id}
              </span>
              {done[item.result_id] && <span className="badge done">{done[item.result_id]}</span>}
            </header>
            <h3>Input</h3>
            <pre className="output-text">{item.input}</pre>
            {item.expected && (
              <p>
                Expected: <strong>{item.expected}</strong>
              </p>
            )}
            <div className={item.other_result_id != null ? "pair" : ""}>
              <div>
                <h3>
                  {item.other_result_id != null && "A · "}
                  {item.target} <span className="muted">{item.target_kind}</span>
                </h3>
                <Output text={item.label ?? item.output ?? ""} markdown={false} />
              </div>
              {item.other_result_id != null && (
                <div>
                  <h3>B · {item.other_target}</h3>
                  <Output text={item.other_output ?? ""} markdown={false} />
                </div>
              )}
            </div>
            {editing && (
              <div className="feedback-edit">
                <label>
                  {editing === "gold" ? "Gold label" : editing === "note" ? "Note" : "Correct answer"}
                  <textarea
                    autoFocus
                    rows={editing === "gold" ? 1 : 3}
                    value={draft}
                    onChange={(e) => setDraft(e.target.value)}
                    onKeyDown={(e) => {
                      if (e.key === "Escape") (e.preventDefault(), setEditing(null));
                      if (e.key === "Enter" && !e.shiftKey) (e.preventDefault(), save());
                    }}
                  />
                </label>
                <span className="muted">Enter saves · Esc cancels</span>
              </div>
            )}
          </article>
        )}
      </section>
    </div>
  );
}
