// Stands in for pngjs and jpeg-js in the browser build (see web/vite.config.ts): the page decodes images
// with createImageBitmap + canvas, so decodeImage() from src/vit/image.ts is never called there.
const unavailable = (): never => {
  throw new Error('decodeImage() is Node-only: in the browser decode with createImageBitmap + canvas and call rgbFromRgba()');
};
const stub = { PNG: { sync: { read: unavailable } }, decode: unavailable, encode: unavailable };
export default stub;
export const decode = unavailable;
export const encode = unavailable;
