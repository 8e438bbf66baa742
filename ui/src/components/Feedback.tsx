import { useEffect, useState } from "react";
import { api, type FeedbackEvent, type Id } from "../api";
import { ErrorNote } from "./common";

/**
 * Inline feedback on one recorded result: thumbs, a 1–5 rating, a correction, tags and a note.
 * Shows what is in force now (from the log), and every change can be undone.
 */
export function FeedbackBar({ resultId, compact = false }: { resultId: Id; compact?: boolean }) {
  const [current, setCurrent] = useState<FeedbackEvent[]>([]);
  const [error, setError] = useState<unknown>(null);
  const [editing, setEditing] = useState<"correction" | "tag" | "note" | null>(null);
  const [draft, setDraft] = useState("");
  const [last, setLast] = useState<Id | null>(null);

  const refresh = () =>
    api
      .resultFeedback(resultId)
      .then((r) => setCurrent(r.current.filter((e) => e.source === "human")))
      .catch(setError);
  useEffect(() => {
    void refresh();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [resultId]);

  const give = async (fb: Parameters<typeof api.feedback>[1]) => {
    try {
      const r = await api.feedback(resultId, fb);
      setLast(r.id);
      setError(null);
      await refresh();
    } catch (e) {
      setError(e);
    }
  };
  const thumb = current.find((e) => e.kind === "thumb") as (FeedbackEvent & { up: boolean }) | undefined;
  const rating = current.find((e) => e.kind === "rating") as (FeedbackEvent & { stars: number }) | undefined;
  const correction = current.find((e) => e.kind === "correction") as
    | (FeedbackEvent & { text?: string; label?: string })
    | undefined;
  const tags = current.filter((e) => e.kind === "tag" && (e as { present: boolean }).present) as (FeedbackEvent & {
    tag: string;
  })[];
  const note = current.find((e) => e.kind === "note") as (FeedbackEvent & { text: string }) | undefined;

  const save = () => {
    const text = draft.trim();
    if (!text || !editing) return setEditing(null);
    if (editing === "correction") void give({ kind: "correction", text });
    if (editing === "tag") void give({ kind: "tag", tag: text, present: true });
    if (editing === "note") void give({ kind: "note", text });
    setEditing(null);
    setDraft("");
  };

  return (
    <div className={`feedback ${compact ? "compact" : ""}`} data-result={resultId}>
      <div className="feedback-row">
        <button
          aria-label="Thumbs up"
          aria-pressed={thumb?.up === true}
          className={`icon ${thumb?.up === true ? "on" : ""}`}
          onClick={() => void give({ kind: "thumb", up: true })}
        >
          <Thumb up />
        </button>
        <button
          aria-label="Thumbs down"
          aria-pressed={thumb?.up === false}
          className={`icon ${thumb?.up === false ? "on" : ""}`}
          onClick={() => void give({ kind: "thumb", up: false })}
        >
          <Thumb up={false} />
        </button>
        <span className="stars" role="radiogroup" aria-label="Rating">
          {[1, 2, 3, 4, 5].map((n) => (
            <button
              key={n}
              role="radio"
              aria-checked={rating?.stars === n}
              aria-label={`${n} star${n > 1 ? "s" : ""}`}
              className={`star ${rating && rating.stars >= n ? "on" : ""}`}
              onClick={() => void give({ kind: "rating", stars: n })}
            >
              ★
            </button>
          ))}
        </span>
        <button className="small" onClick={() => (setEditing("correction"), setDraft(correction?.text ?? ""))}>
          Correct
        </button>
        <button className="small" onClick={() => (setEditing("tag"), setDraft(""))}>
          Tag
        </button>
        <button className="small" onClick={() => (setEditing("note"), setDraft(note?.text ?? ""))}>
          Note
        </button>
        {last != null && (
          <button
            className="small ghost"
            title="Take back the last feedback you gave here"
            onClick={() => void give({ kind: "undo", feedback_id: last }).then(() => setLast(null))}
          >
            Undo
          </button>
        )}
      </div>
      {editing && (
        <div className="feedback-edit">
          <textarea
            autoFocus
            aria-label={editing}
            placeholder={editing === "correction" ? "The answer it should have given" : editing === "tag" ? "tag" : "note"}
            value={draft}
            rows={editing === "tag" ? 1 : 3}
            onChange={(e) => setDraft(e.target.value)}
            onKeyDown={(e) => {
              if (e.key === "Escape") setEditing(null);
              if (e.key === "Enter" && (editing === "tag" || e.ctrlKey || e.metaKey)) {
                e.preventDefault();
                save();
              }
            }}
          />
          <button className="small primary" onClick={save}>
            Save {editing}
          </button>
          <button className="small ghost" onClick={() => setEditing(null)}>
            Cancel
          </button>
        </div>
      )}
      {(correction || tags.length > 0 || note) && (
        <div className="feedback-state">
          {correction && <div className="correction">Correction: {correction.text ?? correction.label}</div>}
          {tags.map((t) => (
            <span key={t.id} className="badge">
              #{t.tag}
              <button
                className="link"
                aria-label={`remove tag ${t.tag}`}
                onClick={() => void give({ kind: "tag", tag: t.tag, present: false })}
              >
                ×
              </button>
            </span>
          ))}
          {note && <div className="note">Note: {note.text}</div>}
        </div>
      )}
      <ErrorNote error={error} />
    </div>
  );
}

/** A thumb drawn inline: no emoji font needed. */
function Thumb({ up }: { up: boolean }) {
  return (
    <svg width="14" height="14" viewBox="0 0 24 24" aria-hidden="true" style={{ transform: up ? undefined : "rotate(180deg)", verticalAlign: "-2px" }}>
      <path
        fill="currentColor"
        d="M2 21h4V9H2v12zm20-11a2 2 0 0 0-2-2h-6.3l1-4.6v-.3c0-.4-.2-.8-.4-1.1L13.2 1 6.6 7.6C6.2 8 6 8.5 6 9v10a2 2 0 0 0 2 2h9c.8 0 1.5-.5 1.8-1.2l3-7.1c.1-.2.2-.5.2-.7v-2z"
      />
    </svg>
  );
}
