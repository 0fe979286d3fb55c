// Quick checks of the Dockerfiles that need no container engine (test-e2e/tests/images.e2e.test.ts
// builds and runs them with buildah and podman): the base image, a non-root user, production
// dependencies only, an entry point that exists, every module the entry point loads copied into
// the image (and every package it imports a production dependency), and the local cluster's
// image catalog running the same entry point.
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, test } from "node:test";
import { parse } from "yaml";
import { repoRoot } from "../test-e2e/cluster/layout.ts";

interface Dockerfile {
  from: string[];
  user: string[];
  workdir: string;
  run: string[];
  /** Repository path → image path. */
  copies: [string, string][];
  entrypoint: string[];
}

function readDockerfile(name: string): Dockerfile {
  const text = readFileSync(join(repoRoot, "images", name), "utf8").replace(/\\\n/g, " ");
  const file: Dockerfile = {
    from: [],
    user: [],
    workdir: "/",
    run: [],
    copies: [],
    entrypoint: [],
  };
  for (const line of text.split("\n")) {
    const [instruction = "", ...rest] = line.trim().split(/\s+/);
    const args = rest.join(" ");
    switch (instruction.toUpperCase()) {
      case "FROM":
        file.from.push(args);
        break;
      case "USER":
        file.user.push(args);
        break;
      case "WORKDIR":
        file.workdir = resolve(file.workdir, args);
        break;
      case "RUN":
        file.run.push(args);
        break;
      case "COPY": {
        const parts = rest.filter((p) => !p.startsWith("--"));
        const to = resolve(file.workdir, parts.pop() ?? "");
        for (const from of parts) file.copies.push([from.replace(/^\.\//, ""), to]);
        break;
      }
      case "ENTRYPOINT":
        file.entrypoint = JSON.parse(args);
        break;
    }
  }
  return file;
}

/** The repository file an image path holds, through the deepest COPY that covers it. */
function sourceOf(file: Dockerfile, imagePath: string): string | undefined {
  const copy = file.copies
    .filter(([, to]) => imagePath.startsWith(`${to}/`))
    .sort(([, a], [, b]) => b.length - a.length)[0];
  return copy && join(copy[0], imagePath.slice(copy[1].length + 1));
}

/** The modules a module loads at run time (type-only imports are erased by Node). */
function importsOf(path: string): string[] {
  const source = readFileSync(join(repoRoot, path), "utf8");
  const specifiers: string[] = [];
  const statement =
    /(?:^|\n)\s*(?:import|export)\s+(type\s+)?(?:[^;"']*?\s+from\s+)?["']([^"']+)["']/g;
  for (const match of source.matchAll(statement)) if (!match[1]) specifiers.push(match[2] ?? "");
  for (const match of source.matchAll(/import\(\s*["']([^"']+)["']\s*\)/g)) {
    specifiers.push(match[1] ?? "");
  }
  return specifiers;
}

/** Every repository file and npm package the entry module loads, transitively. */
function moduleGraph(entry: string): { files: Set<string>; packages: Set<string> } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const pending = [entry];
  while (pending.length > 0) {
    const path = pending.pop() as string;
    if (files.has(path)) continue;
    files.add(path);
    for (const specifier of importsOf(path)) {
      if (specifier.startsWith(".")) {
        pending.push(relative(repoRoot, resolve(repoRoot, dirname(path), specifier)));
      } else if (!specifier.startsWith("node:")) {
        const parts = specifier.split("/");
        packages.add(specifier.startsWith("@") ? parts.slice(0, 2).join("/") : (parts[0] ?? ""));
      }
    }
  }
  return { files, packages };
}

const packageJson = JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8"));
const ignored = readFileSync(join(repoRoot, ".dockerignore"), "utf8")
  .split("\n")
  .filter((line) => line.trim() && !line.startsWith("#"));
const catalog = parse(readFileSync(join(repoRoot, "test-e2e", "image-catalog.yaml"), "utf8"))
  .images as Record<string, { entrypoint: string[]; workingDir: string }>;

const images = [
  { dockerfile: "operator.Dockerfile", image: "weir/operator", extraEntries: [] as string[] },
  {
    dockerfile: "runtime.Dockerfile",
    image: "weir/runtime",
    // A StreamJob names its job module in the image: the examples must load there too.
    extraEntries: readdirSync(join(repoRoot, "runtime", "examples"))
      .filter((f) => f.endsWith(".ts") && !f.endsWith(".test.ts") && f !== "golden.ts")
      .map((f) => `runtime/examples/${f}`),
  },
];

for (const { dockerfile, image, extraEntries } of images) {
  describe(`images/${dockerfile}`, () => {
    const file = readDockerfile(dockerfile);

    test("node:24-slim, a non-root user, production dependencies only", () => {
      assert.deepEqual(file.from, ["node:24-slim"]);
      assert.equal(file.user.length, 1);
      const [user = "", group = "0"] = (file.user[0] ?? "").split(":");
      assert.match(user, /^[1-9][0-9]*$/, "a numeric uid (runAsNonRoot can check it)");
      assert.notEqual(group, "0");
      assert.ok(file.run.some((r) => /npm ci --omit=dev/.test(r)));
      assert.equal(file.workdir, "/app");
    });

    test("the entry point exists, and everything it loads is in the image", () => {
      const [node, entry = ""] = file.entrypoint;
      assert.equal(node, "node");
      const source = sourceOf(file, entry);
      assert.ok(source && existsSync(join(repoRoot, source)), `${entry} comes from the repository`);
      for (const start of [source, ...extraEntries]) {
        const { files, packages } = moduleGraph(start);
        for (const path of files) {
          const copied = file.copies.some(([from]) =>
            path.startsWith(`${from.replace(/\/$/, "")}/`),
          );
          assert.ok(copied, `${start} loads ${path}, which the image lacks`);
          assert.ok(existsSync(join(repoRoot, path)), `${path} exists`);
          assert.ok(
            !ignored.some((p) => path.endsWith(p.replace("**/*", ""))),
            `${path} is not ignored`,
          );
        }
        for (const name of packages) {
          assert.ok(name in packageJson.dependencies, `${name} is a production dependency`);
        }
      }
    });

    test(`the local cluster's catalog runs ${image} the same way`, () => {
      const entry = catalog[image];
      assert.ok(entry, `${image} is in test-e2e/image-catalog.yaml`);
      assert.deepEqual(entry.entrypoint, ["{node}", file.entrypoint[1]]);
      assert.equal(entry.workingDir, file.workdir);
    });
  });
}
