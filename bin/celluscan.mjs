#!/usr/bin/env node
// The `celluscan` command: runs the TypeScript CLI through tsx's loader (no build step).
import { register } from 'tsx/esm/api';

process.env.XDG_RUNTIME_DIR ??= '/tmp';
register();
await import('../src/cli/main.ts');
