// The subgroup layout probe (src/kernels/device.ts probeSubgroupLayout): the subgroup kernels index rows and shuffle
// partners by local_invocation_index, assuming full subgroups of consecutive invocations, which neither WGSL nor
// Vulkan promises; a device is given a subgroup size (and so those kernels) only where a probe at start confirms it.
import { describe, expect, it } from 'vitest';
import { gpu, probeSubgroupLayout } from '../src/kernels/device.js';
import { subgroupSize } from '../src/kernels/matmul.js';
import { useGpu } from './gpu.js';

useGpu();

describe('subgroup layout probe', () => {
  it("a device's subgroup size is its fixed size where the probe passes, and the probe fails for sizes it does not run", async () => {
    const g = gpu();
    const info = (g.adapter as GPUAdapter & { info?: { subgroupMinSize?: number; subgroupMaxSize?: number } }).info;
    const fixed = g.features.has('subgroups') && info?.subgroupMinSize === info?.subgroupMaxSize ? info?.subgroupMinSize : undefined;
    if (!fixed) {
      // (no 'subgroups' or no fixed size: no subgroup kernels, probe or not)
      expect(subgroupSize()).toBeNull();
      return;
    }
    // lavapipe: 8 lanes, laid out as the kernels assume (all the subgroup kernels' tests run on it)
    expect(await probeSubgroupLayout(g.device, fixed)).toBe(true);
    expect(subgroupSize()).toBe(fixed);
    // Sizes this device does not run: lane counts and subgroup_size disagree, so the probe must say no (this is what
    // a device with another layout looks like to it); 3 does not divide the 256-invocation workgroup.
    for (const wrong of [fixed * 2, fixed / 2, 3]) expect(await probeSubgroupLayout(g.device, wrong), `size ${wrong}`).toBe(false);
  });
});
