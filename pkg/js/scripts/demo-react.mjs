// Bundles the React demo (demo/react/app.jsx, React and the client from
// src/) into demo/react/app.js, or into the file named by the first
// argument. Used by `npm run demo:react` and the browser test.
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

/** Bundles the React demo; returns the JavaScript text when outfile is not given. */
export async function bundleReactDemo(outfile) {
  const r = await build({
    entryPoints: [join(root, "demo", "react", "app.jsx")],
    bundle: true,
    format: "esm",
    jsx: "automatic",
    // Development React: StrictMode's double mount and effects run as in a dev server.
    define: { "process.env.NODE_ENV": '"development"' },
    alias: { "@ocvr/realtime-client": join(root, "src", "index.ts"), "@ocvr/realtime-client/react": join(root, "src", "react.ts") },
    logLevel: "warning",
    ...(outfile ? { outfile } : { write: false }),
  });
  return outfile ? undefined : r.outputFiles[0].text;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const out = process.argv[2] ?? join(root, "demo", "react", "app.js");
  await bundleReactDemo(out);
  console.log(`wrote ${out}`);
}
