import ReactMarkdown from "react-markdown";

/** See `Output`: raw HTML is dropped, script URLs neutralised, images shown as their alt text. */
export default function MarkdownView({ text }: { text: string }) {
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
