import ReactMarkdown from "react-markdown";

/**
 * A model's output, as text or as markdown. Raw HTML in the output is never rendered (react-markdown
 * escapes it, and `skipHtml` drops it), links with script URLs are neutralised by react-markdown's
 * URL filter, and images are shown as their alt text: `<img onerror=…>` stays inert text.
 */
export function Output({ text, markdown }: { text: string; markdown: boolean }) {
  if (!markdown) return <pre className="output-text">{text}</pre>;
  return (
    <div className="output-md">
      <ReactMarkdown
        skipHtml
        components={{
          img: ({ alt }) => <span className="img-alt">[image: {alt ?? ""}]</span>,
          a: ({ href, children }) => (
            <a href={href} target="_blank" rel="noreferrer noopener">
              {children}
            </a>
          ),
        }}
      >
        {text}
      </ReactMarkdown>
    </div>
  );
}
