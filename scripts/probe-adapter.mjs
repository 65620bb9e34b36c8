// Exit 0 and print the adapter's name when Dawn (the `webgpu` npm package) finds a WebGPU adapter.
import { create, globals } from 'webgpu';
Object.assign(globalThis, globals);
const gpu = create([]);
const adapter = await gpu.requestAdapter();
if (!adapter) {
  console.error('no WebGPU adapter');
  process.exit(1);
}
const info = adapter.info ?? {};
console.log(`${info.vendor ?? '?'} ${info.architecture ?? ''} ${info.description ?? ''}`.trim());
process.exit(0);
