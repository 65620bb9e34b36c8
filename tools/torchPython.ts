// Finds a Python interpreter that has PyTorch (the project's oracle). On Debian, python3-torch lives under
// /usr/bin/python3, while a pyenv or venv python3 earlier on PATH may lack it: try each and say what failed.
import { spawnSync } from 'node:child_process';

const CANDIDATES = () => [process.env.CELLUSCAN_PYTHON, process.env.PYTHON, '/usr/bin/python3', 'python3', 'python'].filter(Boolean) as string[];

/** The first python that imports every module, or an Error naming what to install and what was tried. */
export function findTorchPython(modules: string[] = ['torch', 'torchvision', 'numpy']): string | Error {
  const tried: string[] = [];
  for (const py of [...new Set(CANDIDATES())]) {
    const r = spawnSync(py, ['-c', `import ${modules.join(', ')}`], { encoding: 'utf8', timeout: 120_000 });
    if (r.status === 0) return py;
    tried.push(`${py}: ${r.error ? r.error.message : (r.stderr || '').trim().split('\n').pop() || `exit ${r.status}`}`);
  }
  return new Error(
    `no python with ${modules.join(', ')}: install python3-torch python3-torchvision (apt-get install python3-torch python3-torchvision; ` +
      `\`npm test\` does this itself), or set CELLUSCAN_PYTHON to a python that has them. Tried: ${tried.join('; ')}`,
  );
}

/** As findTorchPython, but throws. */
export function requireTorchPython(modules?: string[]): string {
  const r = findTorchPython(modules);
  if (r instanceof Error) throw r;
  return r;
}
