import { useState } from "react";
import { api, type SearchHit } from "../api";
import { Empty, ErrorNote, fmtTime } from "../components/common";
import { FeedbackBar } from "../components/Feedback";

/** Full-text search over everything logged: runs, the playground and API traffic. */
export function History() {
  const [query, setQuery] = useState("");
  const [hits, setHits] = useState<SearchHit[] | null>(null);
  const [open, setOpen] = useState<number | null>(null);
  const [error, setError] = useState<unknown>(null);
  const search = async () => {
    if (!query.trim()) return;
    try {
      setHits(await api.history(query));
      setError(null);
    } catch (e) {
      setError(e);
    }
  };
  return (
    <div className="page history">
      <form
        className="search"
        onSubmit={(e) => {
          e.preventDefault();
          void search();
        }}
      >
        <input
          type="search"
          placeholder='Search inputs and outputs (words, "a phrase", prefix*)'
          value={query}
          onChange={(e) => setQuery(e.target.value)}
          aria-label="Search the log"
          autoFocus
        />
        <button className="primary">Search</button>
      </form>
      <ErrorNote error={error} />
      {hits && hits.length === 0 && <Empty title="Nothing matches">Try fewer or other words.</Empty>}
      {!hits && (
        <Empty title="Search everything Benchtop has logged">
          <p>Playground answers, run results and every call to the local API are searchable here.</p>
        </Empty>
      )}
      <ul className="hits">
        {(hits ?? []).map((h) => (
          <li key={h.result_id} data-result={h.result_id}>
            <button className="link hit" onClick={() => setOpen(open === h.result_id ? null : h.result_id)}>
              <span className="muted">
                {fmtTime(h.created_at)} · run #{h.run_id} · {h.target}
              </span>
              <div className="hit-input">{h.input}</div>
              <div className="hit-output">→ {h.label ?? h.output ?? ""}</div>
            </button>
            {open === h.result_id && <FeedbackBar resultId={h.result_id} compact />}
          </li>
        ))}
      </ul>
    </div>
  );
}
