import { execFileSync } from 'node:child_process';

export default function setup(): void {
  // Keep src/kernels/shaders.gen.ts in step with shaders/*.wgsl.
  execFileSync(process.execPath, ['scripts/gen-shaders.mjs'], { stdio: 'inherit' });
  process.env.XDG_RUNTIME_DIR ??= '/tmp';
}
