import { lazy, Suspense } from "react";

// The markdown renderer (remark, micromark) loads the first time markdown is shown.
const Markdown = lazy(() => import("./MarkdownView"));

/**
 * A model's output, as text or as markdown. Raw HTML in the output is never rendered (react-markdown
 * escapes it, and `skipHtml` drops it), links with script URLs are neutralised by react-markdown's
 * URL filter, and images are shown as their alt text: `<img onerror=…>` stays inert text.
 */
export function Output({ text, markdown }: { text: string; markdown: boolean }) {
  if (!markdown) return <pre className="output-text">{text}</pre>;
  return (
    <Suspense fallback={<pre className="output-text">{text}</pre>}>
      <Markdown text={text} />
    </Suspense>
  );
}
