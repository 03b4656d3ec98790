// The build after tsc (npm run build): dist/ is the ES modules with their
// declarations, dist/cjs/ the same compiled to CommonJS (its package.json
// says so, for Node.js and TypeScript), and dist/ocvr-realtime.min.js one
// minified ES module of the client (no React) for pages without a bundler.
// Prints the sizes README.md states ("Size"); test/package.test.mjs checks
// they match.
import { copyFileSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { build } from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const dist = join(root, "dist");

// CommonJS: each module transpiled by esbuild (tsc has checked them), with
// tsc's declarations beside them; dist/cjs/package.json makes Node.js and
// TypeScript read both as CommonJS.
const cjs = join(dist, "cjs");
rmSync(cjs, { recursive: true, force: true });
mkdirSync(cjs, { recursive: true });
const modules = readdirSync(join(root, "src")).filter((f) => f.endsWith(".ts"));
await build({
  entryPoints: modules.map((f) => join(root, "src", f)),
  outdir: cjs,
  format: "cjs",
  platform: "neutral",
  target: "es2022",
  logLevel: "warning",
});
for (const f of modules) copyFileSync(join(dist, f.replace(/\.ts$/, ".d.ts")), join(cjs, f.replace(/\.ts$/, ".d.ts")));
writeFileSync(join(cjs, "package.json"), '{\n  "type": "commonjs"\n}\n');

const min = join(dist, "ocvr-realtime.min.js");
rmSync(min, { force: true });
await build({
  entryPoints: [join(root, "src", "index.ts")],
  outfile: min,
  bundle: true,
  format: "esm",
  minify: true,
  target: "es2020",
  legalComments: "none",
  logLevel: "warning",
});

const bytes = readFileSync(min);
const size = { minified: bytes.length, gzip: gzipSync(bytes, { level: 9 }).length };
writeFileSync(join(dist, "size.json"), JSON.stringify(size, null, 2) + "\n");
console.log(`dist/ocvr-realtime.min.js: ${(size.minified / 1024).toFixed(1)} KiB minified, ${(size.gzip / 1024).toFixed(1)} KiB gzipped`);
