// The CelluScan page: `npm run web` (dev server) or `npm run web:build` (static files in web/dist).
// It imports the library straight from ../src — the same kernels, autograd and model as Node.
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const here = fileURLToPath(new URL('.', import.meta.url));
const repo = fileURLToPath(new URL('..', import.meta.url));
const stub = fileURLToPath(new URL('./stubs/node-image-codecs.ts', import.meta.url));

export default defineConfig({
  root: here,
  // Relative asset URLs: the built page works from any path (the browser test serves it at /).
  base: './',
  resolve: {
    // src/vit/image.ts imports pngjs and jpeg-js at its top level for decodeImage(), which needs Node's
    // Buffer/zlib. The page decodes images with the browser (createImageBitmap + canvas) and uses only the
    // pure parts of image.ts (rgbFromRgba, prepareImage), so the two codecs are replaced by a stub here.
    alias: { pngjs: stub, 'jpeg-js': stub },
  },
  server: { fs: { allow: [repo] } },
  build: { target: 'es2022', outDir: 'dist', emptyOutDir: true, chunkSizeWarningLimit: 2000 },
});
