import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { App, preloadPage } from "./App";
import "./styles.css";

// The page the URL names is loaded first, so it draws in the first render.
void preloadPage(window.location.pathname)
  .catch(() => undefined)
  .then(() =>
    createRoot(document.getElementById("root") as HTMLElement).render(
      <StrictMode>
        <App />
      </StrictMode>,
    ),
  );
