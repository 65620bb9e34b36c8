// The CelluScan page: `npm run web` (dev server) or `npm run web:build` (static files in web/dist).
// It imports the library straight from ../src — the same kernels, autograd and model as Node.
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const here = fileURLToPath(new URL('.', import.meta.url));
const repo = fileURLToPath(new URL('..', import.meta.url));

export default defineConfig({
  root: here,
  // Relative asset URLs: the built page works from any path (the browser test serves it at /).
  base: './',
  // The page decodes images with the browser (createImageBitmap + canvas) and imports only the pure
  // src/vit/image.ts; the Node file decoders (pngjs, jpeg-js) live in src/vit/decode.ts, which it never imports.
  server: { fs: { allow: [repo] } },
  build: { target: 'es2022', outDir: 'dist', emptyOutDir: true, chunkSizeWarningLimit: 2000 },
});
