import { useEffect, useState, type ComponentType } from "react";
import { api, hasToken, setToken, transportKind } from "./api";
import { ErrorNote } from "./components/common";
import { Playground } from "./pages/Playground";

// The playground is in the first bundle; the other pages load when first opened (or, for the page
// a URL opens, before the first render: see `preloadPage`). Not React.lazy: a Suspense boundary
// holds revealed content back for up to 300 ms, which a page opened by its URL would pay.
/* eslint-disable @typescript-eslint/no-explicit-any */
const LOADERS: Record<string, () => Promise<ComponentType<any>>> = {
  "test-sets": () => import("./pages/TestSets").then((m) => m.TestSets),
  runs: () => import("./pages/Runs").then((m) => m.Runs),
  review: () => import("./pages/Review").then((m) => m.Review),
  history: () => import("./pages/History").then((m) => m.History),
  export: () => import("./pages/Export").then((m) => m.Export),
  settings: () => import("./pages/Settings").then((m) => m.Settings),
};
const loaded = new Map<string, ComponentType<any>>();

/** Load the page `path` shows (before the first render, so it draws at once). */
export async function preloadPage(path: string) {
  const { page } = parseRoute(path);
  const load = LOADERS[page];
  if (load && !loaded.has(page)) loaded.set(page, await load());
}

function usePage(page: string): ComponentType<any> | null {
  const [component, setComponent] = useState<{ c: ComponentType<any> } | null>(() => {
    const c = loaded.get(page);
    return c ? { c } : null;
  });
  useEffect(() => {
    const c = loaded.get(page);
    if (c) return setComponent({ c });
    setComponent(null);
    let live = true;
    void preloadPage(`/${page}`).then(() => {
      const c = loaded.get(page);
      if (live && c) setComponent({ c });
    });
    return () => {
      live = false;
    };
  }, [page]);
  return component?.c ?? null;
}

export const PAGES = [
  ["playground", "Playground", "1"],
  ["test-sets", "Test sets", "2"],
  ["runs", "Runs", "3"],
  ["review", "Review", "4"],
  ["history", "History", "5"],
  ["export", "Export", "6"],
  ["settings", "Settings", "7"],
] as const;
type Page = (typeof PAGES)[number][0];

/** `/runs/12` → ["runs", 12]. */
export function parseRoute(path: string): { page: Page; id: number | null } {
  const [, first, second] = path.split("/");
  const page = (PAGES.find(([p]) => p === first)?.[0] ?? "playground") as Page;
  const id = second && /^\d+$/.test(second) ? Number(second) : null;
  return { page, id };
}

function useRoute() {
  const [path, setPath] = useState(window.location.pathname);
  useEffect(() => {
    const onPop = () => setPath(window.location.pathname);
    window.addEventListener("popstate", onPop);
    return () => window.removeEventListener("popstate", onPop);
  }, []);
  const go = (to: string) => {
    if (to !== window.location.pathname) history.pushState(null, "", to);
    setPath(to);
  };
  return { ...parseRoute(path), go };
}

function useTheme() {
  const [theme, setTheme] = useState<"light" | "dark">(
    () =>
      (localStorage.getItem("benchtop.theme") as "light" | "dark" | null) ??
      (window.matchMedia?.("(prefers-color-scheme: dark)").matches ? "dark" : "light"),
  );
  useEffect(() => {
    document.documentElement.dataset.theme = theme;
    localStorage.setItem("benchtop.theme", theme);
  }, [theme]);
  return [theme, () => setTheme(theme === "dark" ? "light" : "dark")] as const;
}

export function App() {
  const { page, id, go } = useRoute();
  const Page = usePage(page);
  const [theme, toggleTheme] = useTheme();
  const [signedIn, setSignedIn] = useState(hasToken());

  // Alt+1…7 switch pages from anywhere.
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (!e.altKey) return;
      const hit = PAGES.find(([, , key]) => key === e.key);
      if (hit) (e.preventDefault(), go(`/${hit[0]}`));
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  });

  // The desktop menu asks for pages by name.
  useEffect(() => {
    const onNav = (e: Event) => go(`/${(e as CustomEvent<string>).detail}`);
    window.addEventListener("benchtop:navigate", onNav);
    return () => window.removeEventListener("benchtop:navigate", onNav);
  });

  if (!signedIn) return <SignIn onDone={() => setSignedIn(true)} />;
  return (
    <div className="app">
      <nav className="nav">
        <div className="brand">Benchtop</div>
        {PAGES.map(([p, label, key]) => (
          <a
            key={p}
            href={`/${p}`}
            className={page === p ? "active" : ""}
            aria-current={page === p ? "page" : undefined}
            title={`Alt+${key}`}
            onClick={(e) => (e.preventDefault(), go(`/${p}`))}
          >
            {label}
          </a>
        ))}
        <div className="spacer" />
        <button className="ghost" onClick={toggleTheme} aria-label="Switch theme">
          {theme === "dark" ? "☀ Light" : "☾ Dark"}
        </button>
        <div className="muted mode">{transportKind() === "desktop" ? "desktop" : "browser"}</div>
      </nav>
      <main className="content">
        {page === "playground" ? (
          <Playground />
        ) : !Page ? (
          <div className="muted">Loading…</div>
        ) : page === "runs" ? (
          <Page runId={id} go={go} />
        ) : page === "settings" ? (
          <Page
            onSignOut={() => {
              localStorage.removeItem("benchtop.token");
              setSignedIn(false);
            }}
          />
        ) : (
          <Page />
        )}
      </main>
    </div>
  );
}

function SignIn({ onDone }: { onDone: () => void }) {
  const [value, setValue] = useState("");
  const [error, setError] = useState<unknown>(null);
  const submit = async () => {
    setToken(value);
    try {
      await api.settings();
      onDone();
    } catch (e) {
      setError(e);
    }
  };
  return (
    <div className="sign-in">
      <h1>Benchtop</h1>
      <p>
        This browser needs the API token. Open the UI with <code>benchtop serve --open</code>, or paste the token that{" "}
        <code>benchtop token</code> prints:
      </p>
      <form onSubmit={(e) => (e.preventDefault(), void submit())}>
        <input type="password" value={value} onChange={(e) => setValue(e.target.value)} aria-label="API token" autoFocus />
        <button className="primary">Sign in</button>
      </form>
      <ErrorNote error={error} />
    </div>
  );
}
