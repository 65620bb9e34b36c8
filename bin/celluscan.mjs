#!/usr/bin/env node
// The `celluscan` command: runs the TypeScript CLI through tsx's loader (no build step).
import { register } from 'tsx/esm/api';

process.env.XDG_RUNTIME_DIR ??= '/tmp';
// In a source checkout, keep src/kernels/shaders.gen.ts in step with shaders/*.wgsl (a no-op when nothing changed),
// so an edited kernel is what runs, not the copy generated at setup.
// A read-only install keeps the generated file it has (and says so once).
import { existsSync } from 'node:fs';
if (existsSync(new URL('../scripts/gen-shaders.mjs', import.meta.url)) && existsSync(new URL('../shaders', import.meta.url))) {
  try {
    await import('../scripts/gen-shaders.mjs');
  } catch (e) {
    console.error(`celluscan: could not regenerate src/kernels/shaders.gen.ts from shaders/ (${e.message}); using the existing one`);
  }
}
register();
await import('../src/cli/main.ts');
