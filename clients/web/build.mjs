// Build the browser demo into build/web (served by clients/web/serve.py behind Envoy).
//
//   node clients/web/build.mjs            descriptors + bundle
//   node clients/web/build.mjs --check    also type-check the sources with tsc
//
// Steps: the google.rpc / grpc.health descriptors compiled into the installed Python packages are written as a
// descriptor image and turned into TypeScript by buf + protoc-gen-es (into the ignored build/web-gen), then
// esbuild bundles the two pages with Connect-ES and the committed generated/ts code: the student page
// (index.html, src/main.ts -> app.js) and the instructor's course dashboard (dashboard.html,
// src/dashboard/main.ts -> dashboard.js, with Chart.js).
import { execFileSync } from "node:child_process";
import { cpSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "..", "..");
const genDir = join(root, "build", "web-gen");
const outDir = join(root, "build", "web");
const python = process.env.PYTHON ?? join(root, ".venv", "bin", "python");
const bin = (name) => join(root, "node_modules", ".bin", name);

export const THIRD_PARTY_PROTOS = [
  "google/rpc/status.proto",
  "google/rpc/error_details.proto",
  "grpc_health/v1/health.proto",
];

export function generateDescriptors() {
  // DESCRIPTOR_IMAGE: an image made beforehand (the container build makes it in its Python stage).
  const image = process.env.DESCRIPTOR_IMAGE ?? join(genDir, "deps.binpb");
  if (process.env.DESCRIPTOR_IMAGE === undefined) {
    execFileSync(python, [join(here, "descriptor_image.py"), image], { cwd: root, stdio: "pipe" });
  }
  const template = JSON.stringify({
    version: "v2",
    clean: true,
    plugins: [
      {
        local: bin("protoc-gen-es"),
        out: join(genDir, "ts"),
        opt: ["target=ts", "import_extension=js"],
      },
    ],
  });
  const paths = THIRD_PARTY_PROTOS.flatMap((path) => ["--path", path]);
  execFileSync(bin("buf"), ["generate", image, ...paths, "--template", template], {
    cwd: root,
    stdio: "inherit",
  });
}

export async function bundle() {
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });
  await esbuild.build({
    entryPoints: {
      app: join(here, "src", "main.ts"),
      dashboard: join(here, "src", "dashboard", "main.ts"),
    },
    outdir: outDir,
    bundle: true,
    format: "esm",
    platform: "browser",
    target: ["chrome120"],
    sourcemap: true,
    minify: true,
    legalComments: "linked",
    logLevel: "warning",
  });
  for (const page of ["index.html", "dashboard.html"]) {
    cpSync(join(here, page), join(outDir, page));
  }
  cpSync(join(here, "styles.css"), join(outDir, "styles.css"));
}

export function typecheck() {
  execFileSync(bin("tsc"), ["--noEmit", "-p", join(here, "tsconfig.json")], {
    cwd: root,
    stdio: "inherit",
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  try {
    generateDescriptors();
    if (process.argv.includes("--check")) {
      typecheck();
    }
    await bundle();
    console.log(`web demo built into ${outDir}`);
  } catch (error) {
    console.error(`web build failed: ${error.message}`);
    process.exit(1);
  }
}
