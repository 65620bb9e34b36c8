import { execFileSync } from 'node:child_process';

export default function setup(): void {
  // Keep src/kernels/shaders.gen.ts in step with shaders/*.wgsl.
  execFileSync(process.execPath, ['scripts/gen-shaders.mjs'], { stdio: 'inherit' });
  process.env.XDG_RUNTIME_DIR ??= '/tmp';
  // Commands the tests spawn must not pick up choices `celluscan tune` cached on this machine (the CLI tune test in
  // train.test.ts sets its own cache folder and turns this back on; the library never loads the cache by itself).
  process.env.CELLUSCAN_TUNING = 'off';
}
