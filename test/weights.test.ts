// Weight files: safetensors, PyTorch zip checkpoints (safe unpickler), name conversion, config inference.
// The torch tests run test/fixtures/make_torch_fixtures.py with Debian's python3-torch / python3-torchvision
// (fixtures go to a temp dir); without them these tests FAIL, they are never skipped.
import { spawnSync } from 'node:child_process';
import { existsSync, linkSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { zipSync } from 'fflate';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { VIT_PRESETS, expectedShapes, inferConfig, validateConfig, vitPreset, type VitConfig } from '../src/vit/config.js';
import { convertFile as convertFileLazy, convertStateDict, detectLayout, renameToTorchvision } from '../src/vit/convert.js';
import {
  WeightsError,
  celluscanMetadata,
  parseSafetensors,
  parseSafetensorsFile,
  readCelluscanMetadata,
  serializeSafetensors,
  type TensorData,
} from '../src/vit/safetensors.js';
import { readTorchCheckpoint, unpickle } from '../src/vit/torchCheckpoint.js';
import { convertFile, readWeightsFile, writeFileAtomic } from '../src/vit/weightsFile.node.js';
import { requireTorchPython } from '../tools/torchPython.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const SCRIPT = join(HERE, 'fixtures', 'make_torch_fixtures.py');
const SMALL: VitConfig = {
  image_size: 48, patch_size: 16, num_layers: 2, num_heads: 3, hidden_dim: 48, mlp_dim: 100, num_classes: 5,
  dropout: 0, attention_dropout: 0, representation_size: null,
};

// ---- helpers -------------------------------------------------------------------------------------------------

function rand(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = (s / 2 ** 32) * 4 - 2;
  }
  return a;
}

/** Bitwise equality of float32 arrays (NaN-safe, -0 ≠ 0), with the first difference in the message. */
function expectSameFloats(actual: Float32Array, expected: Float32Array, what: string): void {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  const a = new Uint32Array(actual.buffer, actual.byteOffset, actual.length);
  const b = new Uint32Array(expected.buffer, expected.byteOffset, expected.length);
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) expect.fail(`${what}: element ${i} is ${actual[i]}, expected ${expected[i]}`);
  }
}

function expectWeightsError(fn: () => unknown, ...patterns: RegExp[]): WeightsError {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err, 'expected a WeightsError').toBeInstanceOf(WeightsError);
  for (const p of patterns) expect((err as Error).message).toMatch(p);
  return err as WeightsError;
}

/** Builds a safetensors file by hand: header object (without padding rules) + raw data. */
function handMade(header: unknown, data: Uint8Array, headerText?: string): Uint8Array {
  const json = new TextEncoder().encode(headerText ?? JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setUint32(0, json.length, true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

const u16bytes = (xs: number[]) => new Uint8Array(new Uint16Array(xs).buffer);

// ---- safetensors -------------------------------------------------------------------------------------------

describe('safetensors', () => {
  const tensors = new Map<string, TensorData>([
    ['b.weight', { shape: [3, 5], data: rand(15, 1) }],
    ['a.bias', { shape: [7], data: rand(7, 2) }],
    ['scalar', { shape: [], data: new Float32Array([Math.PI]) }],
    ['empty', { shape: [0, 4], data: new Float32Array(0) }],
    ['c', { shape: [2, 1, 3], data: new Float32Array([0, -0, Infinity, -Infinity, NaN, 1e-45]) }],
  ]);

  it('round-trips tensors and metadata exactly; header padded with spaces to 8 bytes, keys sorted', () => {
    const md = { format: 'pt', note: 'héllo ✓' };
    const bytes = serializeSafetensors(tensors, md);
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect(n % 8).toBe(0);
    const headerText = new TextDecoder().decode(bytes.subarray(8, 8 + n));
    expect(headerText.trimEnd().length).toBeLessThanOrEqual(n);
    expect(headerText.slice(headerText.trimEnd().length)).toMatch(/^ *$/);
    const header = JSON.parse(headerText);
    expect(Object.keys(header).filter((k) => k !== '__metadata__')).toEqual(['a.bias', 'b.weight', 'c', 'empty', 'scalar']);
    expect(header['a.bias'].data_offsets).toEqual([0, 28]);

    const back = parseSafetensors(bytes);
    expect(back.metadata).toEqual(md);
    expect(back.tensors.size).toBe(tensors.size);
    for (const [k, t] of tensors) {
      const b = back.tensors.get(k)!;
      expect(b.dtype).toBe('F32');
      expect(b.shape).toEqual(t.shape);
      expectSameFloats(b.data, t.data, k);
    }
  });

  it('parses F16, BF16 and F64 (converted to float32 exactly / rounded to nearest)', () => {
    // f16: 1, -2, 65504 (max), 2^-24 (smallest subnormal), 3·2^-24 (subnormal), -0, +inf, NaN, 1/3 rounded
    const f16 = [0x3c00, 0xc000, 0x7bff, 0x0001, 0x0003, 0x8000, 0x7c00, 0x7e00, 0x3555];
    const f16want = [1, -2, 65504, 2 ** -24, 3 * 2 ** -24, -0, Infinity, NaN, 0.333251953125];
    // bf16: 1, -3, 3.140625, 1e38-ish (0x7e96 = 1.0e38 region), smallest normal 2^-126
    const bf16 = [0x3f80, 0xc040, 0x4049, 0x0080, 0xff80];
    const bf16want = [1, -3, 3.140625, 2 ** -126, -Infinity];
    const f64 = new Float64Array([1 / 3, -1e-300, 1e300, 0.1]);
    const f64bytes = new Uint8Array(f64.buffer);
    const data = new Uint8Array(18 + 10 + 32 + 2);
    data.set(u16bytes(f16), 0);
    data.set(u16bytes(bf16), 18);
    data.set(f64bytes, 28);
    const header = {
      h: { dtype: 'F16', shape: [3, 3], data_offsets: [0, 18] },
      b: { dtype: 'BF16', shape: [5], data_offsets: [18, 28] },
      d: { dtype: 'F64', shape: [2, 2], data_offsets: [28, 60] },
      odd: { dtype: 'F16', shape: [1], data_offsets: [60, 62] },
    };
    const st = parseSafetensors(handMade(header, data));
    expect(st.tensors.get('h')!.dtype).toBe('F16');
    expect(st.tensors.get('h')!.shape).toEqual([3, 3]);
    expectSameFloats(st.tensors.get('h')!.data, new Float32Array(f16want), 'f16');
    expectSameFloats(st.tensors.get('b')!.data, new Float32Array(bf16want), 'bf16');
    expectSameFloats(st.tensors.get('d')!.data, Float32Array.from(f64), 'f64');
    expect(st.tensors.get('d')!.data[2]).toBe(Infinity); // 1e300 overflows float32
  });

  it('reads F32 data at an offset that is not 4-byte aligned', () => {
    const data = new Uint8Array(2 + 8);
    data.set(u16bytes([0x3c00]), 0);
    data.set(new Uint8Array(new Float32Array([1.5, -7.25]).buffer), 2);
    const st = parseSafetensors(handMade({ h: { dtype: 'F16', shape: [1], data_offsets: [0, 2] }, f: { dtype: 'F32', shape: [2], data_offsets: [2, 10] } }, data));
    expectSameFloats(st.tensors.get('f')!.data, new Float32Array([1.5, -7.25]), 'f');
  });

  describe('corrupt files give a WeightsError naming the problem', () => {
    const good = serializeSafetensors(tensors, { format: 'pt' });
    const entry = (o: object) => ({ t: { dtype: 'F32', shape: [2], data_offsets: [0, 8], ...o } });
    const eight = new Uint8Array(8);
    it('too short for the header length', () => expectWeightsError(() => parseSafetensors(new Uint8Array(5)), /too short/));
    it('empty file', () => expectWeightsError(() => parseSafetensors(new Uint8Array(0)), /too short/));
    it('truncated file (data cut off)', () =>
      expectWeightsError(() => parseSafetensors(good.subarray(0, good.length - 10)), /tensor '(scalar|empty|c|b\.weight)'.*past the end|truncated/));
    it('truncated inside the header', () => expectWeightsError(() => parseSafetensors(good.subarray(0, 40)), /header length \d+ is larger than the file \(40 bytes\)/));
    it('header length larger than the file', () => {
      const b = good.slice();
      new DataView(b.buffer).setUint32(0, 1_000_000, true);
      expectWeightsError(() => parseSafetensors(b), /header length 1000000 is larger than the file/);
    });
    it('header length beyond 2^32', () => {
      const b = good.slice();
      new DataView(b.buffer).setUint32(4, 3, true);
      expectWeightsError(() => parseSafetensors(b), /larger than the file/);
    });
    it('bad JSON', () => expectWeightsError(() => parseSafetensors(handMade(null, eight, '{"t": {"dtype": "F32",')), /not valid JSON/));
    it('header is not an object', () => expectWeightsError(() => parseSafetensors(handMade([1, 2], eight)), /must be a JSON object/));
    it('unknown dtype', () => expectWeightsError(() => parseSafetensors(handMade(entry({ dtype: 'F33' }), eight)), /tensor 't'.*unknown dtype 'F33'/));
    it('unsupported dtype', () => expectWeightsError(() => parseSafetensors(handMade(entry({ dtype: 'I64', shape: [1] }), eight)), /tensor 't'.*I64 is not supported/));
    it('offsets out of range', () =>
      expectWeightsError(() => parseSafetensors(handMade(entry({ data_offsets: [4, 12] }), eight)), /tensor 't'.*\[4, 12\] run past the end of the data \(8 bytes\)/));
    it('offsets reversed', () => expectWeightsError(() => parseSafetensors(handMade(entry({ data_offsets: [8, 0] }), eight)), /tensor 't'.*data_offsets/));
    it('offsets not matching shape × dtype', () =>
      expectWeightsError(() => parseSafetensors(handMade(entry({ shape: [3] }), new Uint8Array(12))), /tensor 't'.*hold 8 bytes but F32 \[3\] needs 12/));
    it('overlapping tensors', () =>
      expectWeightsError(
        () => parseSafetensors(handMade({ ...entry({}), u: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, eight)),
        /'t'.*'u'.*overlap/,
      ));
    it('bad shape', () => expectWeightsError(() => parseSafetensors(handMade(entry({ shape: [-2] }), eight)), /tensor 't'.*shape/));
    it('missing data_offsets', () => expectWeightsError(() => parseSafetensors(handMade({ t: { dtype: 'F32', shape: [2] } }, eight)), /tensor 't'.*data_offsets/));
    it('non-string metadata', () => expectWeightsError(() => parseSafetensors(handMade({ __metadata__: { a: 1 } }, eight)), /__metadata__ entry 'a'/));
    it('serialising a shape that does not match the data', () =>
      expectWeightsError(() => serializeSafetensors(new Map([['x', { shape: [2, 2], data: new Float32Array(3) }]])), /tensor 'x'.*\[2, 2\].*3 values/));
    it('a PyTorch (zip) checkpoint is named as one, not as a bad header length', () => {
      const zip = zipSync({ 'archive/data.pkl': new Uint8Array(16) });
      expectWeightsError(() => parseSafetensors(zip), /^this is a PyTorch \(zip\) checkpoint, not safetensors: convert it first \(celluscan convert IN OUT\.safetensors\)$/);
    });
  });

  it('parseSafetensorsFile (every command that loads a model) names the file, and tells a PyTorch checkpoint to be converted', () => {
    expect(parseSafetensorsFile(serializeSafetensors(tensors), 'm.safetensors').tensors.size).toBe(tensors.size);
    expectWeightsError(() => parseSafetensorsFile(new TextEncoder().encode('hello\n'), 'text.txt'), /^text\.txt: not a safetensors file: 6 bytes/);
    expectWeightsError(
      () => parseSafetensorsFile(zipSync({ 'archive/data.pkl': new Uint8Array(16) }), 'small.pth'),
      /^small\.pth is a PyTorch \(zip\) checkpoint, not safetensors: convert it first \(celluscan convert IN OUT\.safetensors\)$/,
    );
  });

  it('CelluScan metadata: written and read back, validated', () => {
    const meta = { config: SMALL, labels: ['a', 'b', 'c', 'd', 'e'], mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };
    const md = celluscanMetadata(meta);
    expect(md.format).toBe('pt');
    expect(JSON.parse(md.celluscan_config)).toEqual(SMALL);
    const st = parseSafetensors(serializeSafetensors(new Map(), md));
    expect(readCelluscanMetadata(st.metadata)).toEqual(meta);
    expect(readCelluscanMetadata({ format: 'pt' })).toEqual({});
    expectWeightsError(() => celluscanMetadata({ ...meta, labels: ['a'] }), /1 labels given but the model has 5 classes/);
    expectWeightsError(() => celluscanMetadata({ ...meta, std: [1, 0, 1] }), /std must be 3 finite numbers > 0/);
    expectWeightsError(() => readCelluscanMetadata({ celluscan_labels: '[1' }), /celluscan_labels.*not valid JSON/);
    expectWeightsError(() => readCelluscanMetadata({ celluscan_config: JSON.stringify({ ...SMALL, num_heads: 5 }) }), /hidden_dim 48 is not divisible by num_heads 5/);
  });
});

// ---- config --------------------------------------------------------------------------------------------------

describe('config', () => {
  it('presets are valid and vit_b_16 is the standard one', () => {
    for (const p of Object.values(VIT_PRESETS)) validateConfig(p);
    expect(vitPreset('vit_b_16', { num_classes: 8 })).toMatchObject({ image_size: 224, patch_size: 16, num_layers: 12, num_heads: 12, hidden_dim: 768, mlp_dim: 3072, num_classes: 8 });
    expect(VIT_PRESETS.vit_ti_16).toMatchObject({ hidden_dim: 192, num_heads: 3, mlp_dim: 768, num_layers: 12 });
    expect(VIT_PRESETS.vit_s_16).toMatchObject({ hidden_dim: 384, num_heads: 6, mlp_dim: 1536, num_layers: 12 });
  });

  it('validateConfig lists every problem', () => {
    expectWeightsError(() => validateConfig({ ...SMALL, num_heads: 5, image_size: 50 }), /hidden_dim 48 is not divisible by num_heads 5/, /image_size 50 is not divisible by patch_size 16/);
    expectWeightsError(() => validateConfig({ ...SMALL, num_layers: 0 }), /num_layers must be a positive integer/);
    expectWeightsError(() => validateConfig({ ...SMALL, dropout: 1.5 }), /dropout/);
    expectWeightsError(() => validateConfig({ ...SMALL, representation_size: 7 as unknown as null }), /representation_size/);
  });

  it('inferConfig reads everything but the heads from the shapes', () => {
    const shapes = expectedShapes(SMALL);
    expect(inferConfig(shapes, 3).config).toEqual(SMALL);
    expectWeightsError(() => inferConfig(shapes), /num_heads.*hidden_dim 48 is not a multiple of 64.*--num-heads/);
    const b = inferConfig(expectedShapes(vitPreset('vit_b_16', { num_classes: 8 })));
    expect(b.config).toEqual(vitPreset('vit_b_16', { num_classes: 8 }));
    expect(b.notes.join()).toMatch(/num_heads cannot be read.*12.*--num-heads/);
    // ViT-H has 16 heads of 80: the preset match beats hidden/64
    expect(inferConfig(expectedShapes(VIT_PRESETS.vit_h_14)).config.num_heads).toBe(16);
    // a size no preset has: hidden/64
    const odd = inferConfig(expectedShapes({ ...SMALL, hidden_dim: 128, num_heads: 2 }));
    expect(odd.config.num_heads).toBe(2);
    expect(odd.notes.join()).toMatch(/hidden_dim \/ 64 = 2/);
    // torchvision < 0.13 MLP names are accepted
    const old = new Map([...shapes].map(([k, v]) => [k.replace('mlp.0.', 'mlp.linear_1.').replace('mlp.3.', 'mlp.linear_2.'), v]));
    expect(inferConfig(old, 3).config).toEqual(SMALL);
    expectWeightsError(() => inferConfig(new Map([...shapes].filter(([k]) => k !== 'conv_proj.weight')), 3), /conv_proj\.weight' is missing/);
    const badPos = new Map(shapes).set('encoder.pos_embedding', [1, 11, 48]);
    expectWeightsError(() => inferConfig(badPos, 3), /10.*square|1 \+ a square/);
  });
});

// ---- pickle VM on hand-made pickles ------------------------------------------------------------------------

const enc = (s: string) => [...new TextEncoder().encode(s)];
const shortUni = (s: string) => [0x8c, enc(s).length, ...enc(s)];

function zipCheckpoint(pkl: number[], extra: Record<string, Uint8Array> = {}): Uint8Array {
  return zipSync({ 'archive/data.pkl': new Uint8Array(pkl), 'archive/version': new TextEncoder().encode('3\n'), ...extra }, { level: 0 });
}

describe('unpickler', () => {
  it('builds plain values: dict, list, tuple, ints, floats, strings, bytes, memo', () => {
    const pkl = [
      0x80, 2, 0x7d, 0x71, 0, 0x28, // PROTO 2, EMPTY_DICT, BINPUT 0, MARK
      ...shortUni('a'), 0x4b, 7, // 'a': 7
      ...shortUni('b'), 0x5d, 0x28, 0x4a, 0xff, 0xff, 0xff, 0xff, 0x4d, 0x00, 0x01, 0x65, // 'b': [-1, 256]
      ...shortUni('c'), 0x47, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0, 0x88, 0x4e, 0x87, // 'c': (1.5, True, None)
      ...shortUni('d'), 0x8a, 9, 0, 0, 0, 0, 0, 0, 0, 0, 1, // 'd': 2**64 (LONG1)
      ...shortUni('e'), 0x43, 2, 0xde, 0xad, // 'e': b'\xde\xad'
      ...shortUni('f'), 0x8a, 1, 0xfe, // 'f': -2
      0x75, 0x2e, // SETITEMS, STOP
    ];
    const v = unpickle(new Uint8Array(pkl)) as Map<string, unknown>;
    expect(v.get('a')).toBe(7);
    expect(v.get('b')).toEqual([-1, 256]);
    expect(v.get('c')).toEqual([1.5, true, null]);
    expect(v.get('d')).toBe(2n ** 64n);
    expect(v.get('e')).toEqual(new Uint8Array([0xde, 0xad]));
    expect(v.get('f')).toBe(-2);
  });

  it('refuses any global outside the allow-list, via GLOBAL or STACK_GLOBAL, before anything runs', () => {
    const viaGlobal = [0x80, 2, 0x63, ...enc('builtins\ngetattr\n'), 0x2e];
    expectWeightsError(() => unpickle(new Uint8Array(viaGlobal)), /refusing to load: the pickle references the global 'builtins\.getattr', which is not allowed in a state_dict/);
    const viaStack = [0x80, 4, ...shortUni('os'), ...shortUni('system'), 0x93, 0x2e];
    expectWeightsError(() => unpickle(new Uint8Array(viaStack)), /global 'os\.system'/);
    const subprocess = [0x80, 2, 0x63, ...enc('subprocess\nPopen\n'), 0x2e];
    expectWeightsError(() => readTorchCheckpoint(zipCheckpoint(subprocess)), /refusing to load.*'subprocess\.Popen'/);
    // storage classes are allow-listed as data markers only: calling one is refused
    const callStorage = [0x80, 2, 0x63, ...enc('torch\nFloatStorage\n'), 0x29, 0x52, 0x2e];
    expectWeightsError(() => unpickle(new Uint8Array(callStorage)), /refusing to load: the pickle calls 'torch\.FloatStorage'/);
    // protocol-0 class instantiation (INST) is not supported at all
    expectWeightsError(() => unpickle(new Uint8Array([0x28, 0x69, ...enc('os\nsystem\n'), 0x2e])), /unsupported pickle opcode INST/);
  });

  it('reports corrupt pickles', () => {
    expectWeightsError(() => unpickle(new Uint8Array([0x80, 2, 0x58, 10, 0, 0, 0, 0x61])), /truncated/);
    expectWeightsError(() => unpickle(new Uint8Array([0x80, 2, 0x2e])), /stack underflow/);
    expectWeightsError(() => unpickle(new Uint8Array([0x80, 2, 0x68, 3, 0x2e])), /memo entry 3/);
    expectWeightsError(() => unpickle(new Uint8Array([0x80, 2, 0xff])), /unsupported pickle opcode 0xff/);
  });

  /** {'w': tensor} with the tensor a view (offset, size, stride) of storage '0' (FloatStorage of n elements). */
  function tensorPickle(n: number, offset: number, size: number, stride: number): number[] {
    return [
      0x80, 2, 0x7d, ...shortUni('w'),
      0x63, ...enc('torch._utils\n_rebuild_tensor_v2\n'), 0x28,
      0x28, ...shortUni('storage'), 0x63, ...enc('torch\nFloatStorage\n'), ...shortUni('0'), ...shortUni('cpu'), 0x4b, n, 0x74, 0x51,
      0x4b, offset, 0x4b, size, 0x85, 0x4b, stride, 0x85, 0x89,
      0x63, ...enc('collections\nOrderedDict\n'), 0x29, 0x52,
      0x74, 0x52, 0x73, 0x2e,
    ];
  }

  it('reads a hand-made checkpoint: big-endian byteorder, strided view', () => {
    const be = new Uint8Array(16);
    [1.5, -2, 3.25, 7].forEach((v, i) => new DataView(be.buffer).setFloat32(4 * i, v, false));
    const ck = readTorchCheckpoint(zipCheckpoint(tensorPickle(4, 1, 2, 2), { 'archive/data/0': be, 'archive/byteorder': new Uint8Array(enc('big')) }));
    expect(ck.tensors.get('w')!.shape).toEqual([2]);
    expectSameFloats(ck.tensors.get('w')!.data, new Float32Array([-2, 7]), 'w');
    const le = new Uint8Array(new Float32Array([1.5, -2, 3.25, 7]).buffer);
    expectWeightsError(() => readTorchCheckpoint(zipCheckpoint(tensorPickle(4, 1, 3, 2), { 'archive/data/0': le })), /tensor 'w': view .* runs past its storage of 4 elements/);
    expectWeightsError(() => readTorchCheckpoint(zipCheckpoint(tensorPickle(4, 0, 4, 1))), /tensor 'w': its storage data\/0 is missing/);
    expectWeightsError(() => readTorchCheckpoint(zipCheckpoint(tensorPickle(5, 0, 4, 1), { 'archive/data/0': le })), /storage data\/0 has 16 bytes, expected 5 × 4/);
  });

  it('reports non-checkpoints', () => {
    expectWeightsError(() => readTorchCheckpoint(new Uint8Array([1, 2, 3, 4])), /not a PyTorch checkpoint/);
    expectWeightsError(() => readTorchCheckpoint(zipSync({ 'x/constants.pkl': new Uint8Array(1), 'x/code/a.py': new Uint8Array(1) })), /TorchScript/);
    expectWeightsError(() => readTorchCheckpoint(zipCheckpoint([0x80, 2, 0x7d, 0x2e])), /no tensors/);
  });
});

// ---- real torch.save outputs -------------------------------------------------------------------------------

function findPython(): string {
  return requireTorchPython();
}

function runPython(py: string, args: string[]): Record<string, unknown> {
  const r = spawnSync(py, [SCRIPT, ...args], { encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) throw new Error(`${SCRIPT} ${args.join(' ')} failed (${r.status ?? r.signal}):\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

function loadExpected(dir: string, name: string): Map<string, { shape: number[]; data: Float32Array; dtype: string }> {
  const index = JSON.parse(readFileSync(join(dir, `${name}.json`), 'utf8')) as Record<string, { shape: number[]; offset: number; dtype: string }>;
  const raw = readFileSync(join(dir, `${name}.bin`));
  const all = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
  const out = new Map<string, { shape: number[]; data: Float32Array; dtype: string }>();
  for (const [k, e] of Object.entries(index)) {
    const n = e.shape.reduce((a, b) => a * b, 1);
    out.set(k, { shape: e.shape, dtype: e.dtype, data: all.subarray(e.offset, e.offset + n) });
  }
  return out;
}

const readCk = (path: string) => readTorchCheckpoint(new Uint8Array(readFileSync(path)));

function expectSameTensors(actual: Map<string, { shape: number[]; data: Float32Array }>, expected: Map<string, { shape: number[]; data: Float32Array }>): void {
  expect([...actual.keys()]).toEqual([...expected.keys()]);
  for (const [k, e] of expected) {
    const a = actual.get(k)!;
    expect(a.shape, k).toEqual(e.shape);
    expectSameFloats(a.data, e.data, k);
  }
}

/** torchvision → Hugging Face ViTForImageClassification names (the inverse of convert.ts, written out independently). */
function toHF(sd: Map<string, TensorData>): Map<string, TensorData> {
  const out = new Map<string, TensorData>();
  for (const [k, t] of sd) {
    let m: RegExpExecArray | null;
    if (k === 'class_token') out.set('vit.embeddings.cls_token', t);
    else if (k === 'encoder.pos_embedding') out.set('vit.embeddings.position_embeddings', t);
    else if ((m = /^conv_proj\.(\w+)$/.exec(k))) out.set(`vit.embeddings.patch_embeddings.projection.${m[1]}`, t);
    else if ((m = /^encoder\.ln\.(\w+)$/.exec(k))) out.set(`vit.layernorm.${m[1]}`, t);
    else if ((m = /^heads\.head\.(\w+)$/.exec(k))) out.set(`classifier.${m[1]}`, t);
    else if ((m = /^encoder\.layers\.encoder_layer_(\d+)\.(.*)$/.exec(k))) {
      const p = `vit.encoder.layer.${m[1]}.`;
      const rest = m[2];
      const inProj = /^self_attention\.in_proj_(weight|bias)$/.exec(rest);
      if (inProj) {
        const third = t.data.length / 3;
        const shape = [t.shape[0] / 3, ...t.shape.slice(1)];
        ['query', 'key', 'value'].forEach((q, i) =>
          out.set(`${p}attention.attention.${q}.${inProj[1]}`, { shape, data: t.data.slice(i * third, (i + 1) * third) }),
        );
        continue;
      }
      const table: Record<string, string> = {
        'ln_1.': 'layernorm_before.', 'ln_2.': 'layernorm_after.', 'self_attention.out_proj.': 'attention.output.dense.',
        'mlp.0.': 'intermediate.dense.', 'mlp.3.': 'output.dense.',
      };
      const pre = Object.keys(table).find((x) => rest.startsWith(x));
      if (!pre) throw new Error(`toHF: no rule for ${k}`);
      out.set(p + table[pre] + rest.slice(pre.length), t);
    } else throw new Error(`toHF: no rule for ${k}`);
  }
  return out;
}

/** torchvision → timm vit_*_patch16_224 names. */
function toTimm(sd: Map<string, TensorData>): Map<string, TensorData> {
  const out = new Map<string, TensorData>();
  const table: [RegExp, string][] = [
    [/^class_token$/, 'cls_token'],
    [/^encoder\.pos_embedding$/, 'pos_embed'],
    [/^conv_proj\./, 'patch_embed.proj.'],
    [/^encoder\.ln\./, 'norm.'],
    [/^heads\.head\./, 'head.'],
    [/^encoder\.layers\.encoder_layer_(\d+)\.ln_1\./, 'blocks.$1.norm1.'],
    [/^encoder\.layers\.encoder_layer_(\d+)\.ln_2\./, 'blocks.$1.norm2.'],
    [/^encoder\.layers\.encoder_layer_(\d+)\.self_attention\.in_proj_/, 'blocks.$1.attn.qkv.'],
    [/^encoder\.layers\.encoder_layer_(\d+)\.self_attention\.out_proj\./, 'blocks.$1.attn.proj.'],
    [/^encoder\.layers\.encoder_layer_(\d+)\.mlp\.0\./, 'blocks.$1.mlp.fc1.'],
    [/^encoder\.layers\.encoder_layer_(\d+)\.mlp\.3\./, 'blocks.$1.mlp.fc2.'],
  ];
  for (const [k, t] of sd) {
    const rule = table.find(([re]) => re.test(k));
    if (!rule) throw new Error(`toTimm: no rule for ${k}`);
    out.set(k.replace(rule[0], rule[1]), t);
  }
  return out;
}

describe('PyTorch checkpoints and conversion (real torch.save files from python3-torch)', () => {
  let py: string;
  let dir: string;
  let info: Record<string, unknown>;
  let vit: ReturnType<typeof loadExpected>;

  let setupError: unknown;

  beforeAll(() => {
    try {
      py = findPython();
      dir = mkdtempSync(join(tmpdir(), 'celluscan-weights-'));
      info = runPython(py, ['make', dir]);
      vit = loadExpected(dir, 'vit');
    } catch (e) {
      setupError = e; // every test below fails with this message (never skipped)
    }
  }, 120_000);

  beforeEach(() => {
    if (setupError) throw setupError;
  });

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('expectedShapes matches real torchvision state_dicts, keys in order', () => {
    const real = JSON.parse(readFileSync(join(dir, 'shapes.json'), 'utf8')) as { config: Partial<VitConfig> | 'vit_b_16'; keys: [string, number[]][] }[];
    expect(real.length).toBe(3);
    for (const r of real) {
      const cfg: VitConfig = r.config === 'vit_b_16' ? vitPreset('vit_b_16') : { ...SMALL, ...r.config };
      expect([...expectedShapes(cfg)]).toEqual(r.keys);
      const shapes = new Map(r.keys);
      expect(inferConfig(shapes, cfg.num_heads).config).toEqual(cfg);
    }
  });

  it('reads a float32 state_dict exactly', () => {
    const ck = readCk(join(dir, 'vit.pth'));
    expect(ck.sourceKey).toBeUndefined();
    expectSameTensors(ck.tensors, vit);
    for (const t of ck.tensors.values()) expect(t.dtype).toBe('F32');
  });

  for (const [name, dtype] of [['f16', 'F16'], ['bf16', 'BF16'], ['f64', 'F64']] as const) {
    it(`reads a ${name} state_dict, converted to float32 exactly as torch's .float()`, () => {
      const ck = readCk(join(dir, `vit_${name}.pth`));
      expectSameTensors(ck.tensors, loadExpected(dir, `vit_${name}`));
      for (const t of ck.tensors.values()) expect(t.dtype).toBe(dtype);
    });
  }

  it('materialises non-contiguous, offset, shared, stride-0, scalar and empty views', () => {
    const ck = readCk(join(dir, 'views.pth'));
    expectSameTensors(ck.tensors, loadExpected(dir, 'views'));
  });

  it("finds the state dict under a training checkpoint's 'model' key (with optimizer state around it)", () => {
    const ck = readCk(join(dir, 'train_ckpt.pth'));
    expect(ck.sourceKey).toBe('model');
    expect(ck.notes.join()).toMatch(/'model'/);
    expectSameTensors(ck.tensors, vit);
  });

  it('refuses malicious pickles without running them', () => {
    expect(info.evil_is_live, 'torch.load runs the same pickle (the fixture is real)').toBe(true);
    expectWeightsError(() => readCk(join(dir, 'evil_system.pth')), /refusing to load: the pickle references the global 'posix\.system', which is not allowed in a state_dict/);
    expectWeightsError(() => readCk(join(dir, 'evil_eval.pth')), /refusing to load.*'__builtin__\.eval'/);
    expect(existsSync(join(dir, 'PWNED_system'))).toBe(false);
    expect(existsSync(join(dir, 'PWNED_eval'))).toBe(false);
    expectWeightsError(() => readCk(join(dir, 'whole_model.pth')), /refusing to load.*'torchvision\.models\.vision_transformer\.VisionTransformer'.*model\.state_dict\(\)/);
  });

  it('explains legacy (non-zip) torch files', () => {
    expectWeightsError(() => readCk(join(dir, 'legacy.pth')), /legacy.*re-save it with a modern torch/);
  });

  it('renames Hugging Face and timm layouts (synthetic, built from the torchvision state dict)', () => {
    const hf = toHF(vit);
    const timm = toTimm(vit);
    expect(detectLayout(hf.keys())).toBe('hf');
    expect(detectLayout(timm.keys())).toBe('timm');
    expect(detectLayout(vit.keys())).toBe('torchvision');
    const plan = renameToTorchvision(hf.keys());
    expect(plan.mapping.get('encoder.layers.encoder_layer_1.self_attention.in_proj_weight')).toEqual([
      'vit.encoder.layer.1.attention.attention.query.weight',
      'vit.encoder.layer.1.attention.attention.key.weight',
      'vit.encoder.layer.1.attention.attention.value.weight',
    ]);
    for (const src of [vit, hf, timm]) {
      const res = convertStateDict(src, { numHeads: 3 });
      expect(res.config).toEqual(SMALL);
      expectSameTensors(res.tensors, vit);
    }
    // DataParallel's 'module.' prefix
    const wrapped = new Map([...timm].map(([k, v]) => [`module.${k}`, v]));
    const res = convertStateDict(wrapped, { numHeads: 3 });
    expect(res.notes.join()).toMatch(/'module\.' prefix/);
    expectSameTensors(res.tensors, vit);
  });

  it('reports unknown, missing and mis-shaped tensors together, by name, with shapes', () => {
    const bad = new Map(vit);
    bad.delete('encoder.layers.encoder_layer_1.ln_2.bias');
    bad.set('encoder.extra.weight', { shape: [2], data: new Float32Array(2), dtype: 'x' });
    bad.set('encoder.layers.encoder_layer_0.mlp.3.bias', { shape: [47], data: new Float32Array(47), dtype: 'x' });
    const e = expectWeightsError(
      () => convertStateDict(bad, { numHeads: 3 }),
      /3 problems/,
      /unknown tensor 'encoder\.extra\.weight' \[2\]/,
      /missing tensor 'encoder\.layers\.encoder_layer_1\.ln_2\.bias' \(expected \[48\]\)/,
      /'encoder\.layers\.encoder_layer_0\.mlp\.3\.bias': expected \[48\], got \[47\]/,
    );
    expect(e.message.split('\n').length).toBe(4);
    // HF: a mis-shaped query shows which source tensors made the in_proj
    const hf = toHF(vit);
    const q = 'vit.encoder.layer.0.attention.attention.query.weight';
    hf.set(q, { shape: [48, 47], data: new Float32Array(48 * 47) });
    expectWeightsError(() => convertStateDict(hf, { numHeads: 3 }), /cannot build 'encoder\.layers\.encoder_layer_0\.self_attention\.in_proj_weight'.*\[48, 47\]/);
    const hf2 = toHF(vit);
    hf2.delete('vit.encoder.layer.1.attention.attention.value.bias');
    expectWeightsError(() => convertStateDict(hf2, { numHeads: 3 }), /no matching value tensor/);
    hf2.set('vit.encoder.layer.1.attention.attention.value.bias', vit.get('encoder.ln.bias')!);
    hf2.set('vit.pooler.dense.weight', { shape: [48, 48], data: new Float32Array(48 * 48) });
    expectWeightsError(() => convertStateDict(hf2, { numHeads: 3 }), /unknown tensor 'vit\.pooler\.dense\.weight' \[48, 48\]/);
    expectWeightsError(() => convertStateDict(vit), /--num-heads/);
    expectWeightsError(() => convertStateDict(vit, { numHeads: 3, labels: ['a'] }), /1 labels given but the model has 5 classes/);
  });

  it('convertFile writes files that torchvision loads with load_state_dict(strict=True)', async () => {
    const labels = ['neutrophil', 'eosinophil', 'basophil', 'lymphocyte', 'monocyte'];
    const mean = [0.5, 0.5, 0.5];
    const std = [0.25, 0.25, 0.25];
    const r1 = await convertFile(join(dir, 'vit.pth'), join(dir, 'converted_tv.safetensors'), { numHeads: 3, labels, mean, std });
    expect(r1.config).toEqual(SMALL);
    expect(r1.layout).toBe('torchvision');
    const r2 = await convertFile(join(dir, 'vit_old_names.pth'), join(dir, 'converted_old.safetensors'), { numHeads: 3 });
    expect(r2.notes.join()).toMatch(/linear_1/);
    // (through convert.ts's browser-safe entry point, which loads weightsFile.node.ts on demand)
    const rc = await convertFileLazy(join(dir, 'train_ckpt.pth'), join(dir, 'converted_ckpt.safetensors'), { numHeads: 3 });
    expect(rc.notes.join()).toMatch(/'model' key/);
    const ser = (m: Map<string, TensorData>) => serializeSafetensors(m, {});
    writeFileSync(join(dir, 'hf.safetensors'), ser(toHF(vit)));
    writeFileSync(join(dir, 'timm.safetensors'), ser(toTimm(vit)));
    const r3 = await convertFile(join(dir, 'hf.safetensors'), join(dir, 'converted_hf.safetensors'), { numHeads: 3 });
    expect(r3.layout).toBe('hf');
    await convertFile(join(dir, 'timm.safetensors'), join(dir, 'converted_timm.safetensors'), { numHeads: 3 });
    // a CelluScan file converts to itself, keeping its metadata (heads included)
    const r4 = await convertFile(join(dir, 'converted_tv.safetensors'), join(dir, 'converted_again.safetensors'));
    expect(r4.config).toEqual(SMALL);
    const again = await readWeightsFile(join(dir, 'converted_again.safetensors'));
    expect(readCelluscanMetadata(again.metadata)).toEqual({ config: SMALL, labels, mean, std });
    expect(again.format).toBe('safetensors');
    expectSameTensors(
      new Map([...again.tensors].sort(([a], [b]) => (a < b ? -1 : 1))),
      new Map([...vit].sort(([a], [b]) => (a < b ? -1 : 1))),
    );

    const verified = runPython(py, ['verify', dir]) as Record<string, Record<string, unknown>>;
    expect(Object.keys(verified).sort()).toEqual([
      'converted_again.safetensors', 'converted_ckpt.safetensors', 'converted_hf.safetensors', 'converted_old.safetensors',
      'converted_timm.safetensors', 'converted_tv.safetensors',
    ]);
    for (const [name, v] of Object.entries(verified)) {
      expect(v, name).toEqual({ missing: [], unexpected: [], mismatched: [], keys_match: true, format: 'pt', out_shape: [2, 5], finite: true });
    }
  });

  it('convertFile never leaves a partial output', async () => {
    const out = join(dir, 'never.safetensors');
    await expect(convertFile(join(dir, 'evil_system.pth'), out)).rejects.toThrow(/evil_system\.pth: refusing to load/);
    await expect(convertFile(join(dir, 'vit.pth'), out)).rejects.toThrow(/--num-heads/);
    await expect(convertFile(join(dir, 'vit.pth'), join(dir, 'no-such-dir', 'x.safetensors'), { numHeads: 3 })).rejects.toThrow(/its folder .*no-such-dir does not exist/);
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(dir).filter((f) => f.includes('.tmp-'))).toEqual([]);
    // an existing file is replaced whole
    const target = join(dir, 'replace.bin');
    writeFileSync(target, 'old contents that are longer than the new ones');
    await writeFileAtomic(target, new Uint8Array([1, 2, 3]));
    expect([...readFileSync(target)]).toEqual([1, 2, 3]);
    expect(readdirSync(dir).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });

  it('convertFile refuses to write over its input (the same path, a symbolic link, a hard link), which stays as it was', async () => {
    const sub = mkdtempSync(join(dir, 'same-'));
    const input = join(sub, 'self.pth');
    writeFileSync(input, readFileSync(join(dir, 'vit.pth')));
    symlinkSync(input, join(sub, 'link.pth'));
    linkSync(input, join(sub, 'hard.pth'));
    for (const out of [input, join(sub, '.', 'self.pth'), join(sub, 'link.pth'), join(sub, 'hard.pth')]) {
      await expect(convertFile(input, out, { numHeads: 3 }), out).rejects.toThrow(/^the input and the output are the same file \(.*self\.pth\): write the output to another path$/);
    }
    expect(readFileSync(input).equals(readFileSync(join(dir, 'vit.pth')))).toBe(true);
    expect(readdirSync(sub).sort()).toEqual(['hard.pth', 'link.pth', 'self.pth']);
  });

  it('convertFile names an input it cannot read and an output it cannot write (not errno codes or temp-file names)', async () => {
    const sub = mkdtempSync(join(dir, 'paths-'));
    const errorOf = (p: Promise<unknown>) => p.then(() => expect.fail('expected an error'), (e: Error) => e);
    const messages = [
      await errorOf(convertFile(join(sub, 'missing.pth'), join(sub, 'o.safetensors'))),
      await errorOf(convertFile(sub, join(sub, 'o.safetensors'))),
      await errorOf(convertFile(join(dir, 'vit.pth'), join(sub, 'nope', 'm.safetensors'), { numHeads: 3 })),
      await errorOf(convertFile(join(dir, 'vit.pth'), sub, { numHeads: 3 })),
      await errorOf(convertFile(join(dir, 'vit.pth'), join(dir, 'vit.pth', 'm.safetensors'), { numHeads: 3 })),
    ];
    for (const e of messages) expect(e).toBeInstanceOf(WeightsError);
    expect(messages.map((e) => e.message)).toEqual([
      `cannot read ${join(sub, 'missing.pth')}: no such file`,
      `cannot read ${sub}: it is a folder`,
      `cannot write ${join(sub, 'nope', 'm.safetensors')}: its folder ${join(sub, 'nope')} does not exist`,
      `cannot write ${sub}: it is a folder (give a file path, e.g. ${join(sub, 'vit.safetensors')})`,
      `cannot write ${join(dir, 'vit.pth', 'm.safetensors')}: ${join(dir, 'vit.pth')} is not a folder`,
    ]);
    expect(readdirSync(sub)).toEqual([]);
    // writeFileAtomic itself (also the trainer's checkpoints): the path it was given, why, and no temp file left
    await expect(writeFileAtomic(join(sub, 'nope', 'x.bin'), new Uint8Array(1))).rejects.toThrow(new RegExp(`^cannot write ${join(sub, 'nope', 'x.bin')}: its folder .*nope does not exist$`));
    mkdirSync(join(sub, 'a-folder'));
    await expect(writeFileAtomic(join(sub, 'a-folder'), new Uint8Array(1))).rejects.toThrow(/^cannot write .*a-folder: it is a folder$/);
    expect(readdirSync(sub)).toEqual(['a-folder']);
  });

  it("convertFile refuses a --num-heads that differs from the heads a CelluScan input's metadata records (the same number passes)", async () => {
    const sub = mkdtempSync(join(dir, 'heads-'));
    const cs = join(sub, 'm.safetensors');
    await convertFile(join(dir, 'vit.pth'), cs, { numHeads: 3 });
    const out = join(sub, 'out.safetensors');
    await expect(convertFile(cs, out, { numHeads: 4 })).rejects.toThrow(
      /^.*m\.safetensors: --num-heads 4 differs from the 3 heads its metadata \(celluscan_config\) records: leave --num-heads out$/,
    );
    expect(existsSync(out)).toBe(false);
    expect((await convertFile(cs, out, { numHeads: 3 })).config.num_heads).toBe(3);
    expect((await convertFile(cs, out)).config.num_heads).toBe(3);
  });

  it('CLI convert: one line naming the problem and the file, exit 1', () => {
    const sub = mkdtempSync(join(dir, 'cli-'));
    const self = join(sub, 'self.pth');
    writeFileSync(self, readFileSync(join(dir, 'vit.pth')));
    const run = (...args: string[]) => {
      const r = spawnSync(process.execPath, [join(HERE, '..', 'bin', 'celluscan.mjs'), 'convert', ...args], { encoding: 'utf8', timeout: 120_000, cwd: sub });
      return { status: r.status, stdout: r.stdout, err: r.stderr.split('\n').filter((l) => l && !l.startsWith('Warning:')) };
    };
    expect(run('missing.pth', 'o.safetensors')).toEqual({ status: 1, stdout: '', err: ['celluscan: convert: cannot read missing.pth: no such file'] });
    expect(run('self.pth', 'self.pth', '--num-heads', '3')).toEqual({
      status: 1,
      stdout: '',
      err: [`celluscan: convert: the input and the output are the same file (${self}): write the output to another path`],
    });
    expect(run('self.pth', 'nope/m.safetensors', '--num-heads', '3').err).toEqual(['celluscan: convert: cannot write nope/m.safetensors: its folder nope does not exist']);
    expect(readFileSync(self).equals(readFileSync(join(dir, 'vit.pth')))).toBe(true);
    expect(readdirSync(sub)).toEqual(['self.pth']);
  });
});
