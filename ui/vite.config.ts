import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// `npm run dev` proxies the APIs to a `benchtop serve` on :8077 (start it with
// `--allow-origin http://localhost:5173`), so the UI can be worked on with hot reload.
export default defineConfig({
  plugins: [react()],
  clearScreen: false,
  server: {
    port: 5173,
    strictPort: true,
    proxy: { "/api": "http://127.0.0.1:8077", "/v1": "http://127.0.0.1:8077" },
  },
  build: {
    target: "es2022",
    chunkSizeWarningLimit: 1500,
  },
  test: {
    environment: "jsdom",
    include: ["src/**/*.test.{ts,tsx}"],
  },
});
