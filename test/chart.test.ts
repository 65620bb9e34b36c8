// Chart rendering (src/plot/chart.ts): text needs a font; a machine without any (a bare GPU machine) must be told,
// and CELLUSCAN_FONT_DIRS supplies one (the GPU pack ships DejaVu Sans there).
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { textRenders } from '../src/plot/chart.js';

const DEJAVU = '/usr/share/fonts/truetype/dejavu';
const saved = process.env.CELLUSCAN_FONT_DIRS;
afterEach(() => {
  if (saved === undefined) delete process.env.CELLUSCAN_FONT_DIRS;
  else process.env.CELLUSCAN_FONT_DIRS = saved;
});

describe('chart fonts', () => {
  it('finds no text without fonts, and draws it from a folder named in CELLUSCAN_FONT_DIRS', () => {
    const empty = mkdtempSync(join(tmpdir(), 'celluscan-nofonts-'));
    try {
      process.env.CELLUSCAN_FONT_DIRS = empty;
      expect(textRenders(false)).toBe(false);
      // (Debian's fonts-dejavu-core: installed on this project's machines, the font the GPU pack ships)
      expect(existsSync(DEJAVU), `${DEJAVU} (fonts-dejavu-core) is needed for this test`).toBe(true);
      process.env.CELLUSCAN_FONT_DIRS = `${empty}:${DEJAVU}`;
      expect(textRenders(false)).toBe(true);
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });
});
