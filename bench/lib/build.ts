/**
 * The runner measures Courier as a service runs in production: compiled JavaScript on plain Node,
 * not TypeScript through tsx (whose loader thread alone adds about 20 MB of RSS to every process and
 * would be counted against Courier's peak RSS). Each benchmark and worker is bundled by esbuild into
 * bench/.build with the @courier/* packages inside and every npm dependency left external, so
 * better-sqlite3, BullMQ and zod load from node_modules exactly as they would from source.
 * `npm run bench -- --source` skips the build and runs the TypeScript under tsx instead.
 */
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { type BuildOptions, build } from 'esbuild';

/** Set by the runner for its children: where the bundles are; unset means run from source. */
export const BUILD_ENV = 'COURIER_BENCH_BUILD';

/** Bundles bench/cases/*.ts and bench/workers/*.ts into `<benchDir>/.build`; returns that folder. */
export async function buildBenchmarks(benchDir: string): Promise<string> {
  const outdir = join(benchDir, '.build');
  rmSync(outdir, { recursive: true, force: true });
  const entryPoints = ['cases', 'workers'].flatMap((folder) =>
    readdirSync(join(benchDir, folder))
      .filter((file) => file.endsWith('.ts'))
      .map((file) => join(benchDir, folder, file)),
  );
  const common = {
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    logLevel: 'warning',
    // Bundled ESM has no `require`; a dependency that calls it (better-sqlite3's loader) needs one.
    banner: {
      js: "import { createRequire as courierRequire } from 'node:module'; const require = courierRequire(import.meta.url);",
    },
    plugins: [
      {
        name: 'courier-inside-npm-outside',
        setup(builder) {
          builder.onResolve({ filter: /^[^./]/ }, (args) =>
            args.path.startsWith('@courier/') ? undefined : { external: true },
          );
        },
      },
    ],
  } satisfies BuildOptions;
  await build({ ...common, entryPoints, outdir, outbase: benchDir });
  // The SQLite transport starts its writer thread from writer-thread.js beside its own code, which
  // in a bundle is the bundle's folder.
  const writerThread = join(benchDir, '..', 'packages', 'sqlite', 'src', 'writer-thread.ts');
  for (const folder of ['cases', 'workers'])
    await build({
      ...common,
      entryPoints: [writerThread],
      outfile: join(outdir, folder, 'writer-thread.js'),
    });
  return outdir;
}

/** The file to run for `file` (relative to bench/, a .ts path): its bundle when built, else the source. */
export function runnable(benchDir: string, file: string): { path: string; viaTsx: boolean } {
  const built = process.env[BUILD_ENV];
  if (built) return { path: join(built, file.replace(/\.ts$/, '.js')), viaTsx: false };
  return { path: join(benchDir, file), viaTsx: true };
}
