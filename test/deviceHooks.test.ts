// initGpu's ready hooks (src/kernels/device.ts onGpuReady; the CLI loads cached tuning there). In a file of its own:
// it replaces the device.
import { describe, expect, it } from 'vitest';
import { destroyGpu, gpu, hasGpu, initGpu, onGpuReady } from '../src/kernels/device.js';

describe('onGpuReady', () => {
  it('runs its hooks before initGpu resolves; a hook that throws fails initGpu, leaves no device, and the next initGpu starts afresh', async () => {
    const seen: string[] = [];
    const removeOk = onGpuReady((g) => {
      seen.push(`ok ${g.adapterKey}`);
      expect(gpu()).toBe(g); // the device is current while hooks run
    });
    let fail = true;
    const removeFail = onGpuReady(async () => {
      await new Promise((r) => setTimeout(r, 10));
      if (fail) throw new Error('hook failed on purpose');
    });
    try {
      await expect(initGpu()).rejects.toThrow('hook failed on purpose');
      expect(hasGpu()).toBe(false);
      expect(() => gpu()).toThrow();
      expect(seen).toHaveLength(1);
      fail = false;
      const g = await initGpu(); // a new device: the hooks run again, and pass
      expect(seen).toHaveLength(2);
      expect(gpu()).toBe(g);
      expect(await initGpu()).toBe(g); // made once: no hooks again
      expect(seen).toHaveLength(2);
    } finally {
      removeOk();
      removeFail();
      destroyGpu();
    }
  });
});
