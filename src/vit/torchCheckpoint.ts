// Reads `torch.save(model.state_dict(), path)` files (PyTorch's zip format, torch ≥ 1.6) without executing
// anything: a pickle VM in TypeScript whose GLOBAL opcode resolves only an allow-list of names a state_dict
// needs (ALLOWED_GLOBALS). Any other global — os.system, builtins.eval, a model class — is refused at the opcode
// that names it, before anything could use it. Pure functions over Uint8Array (browser-safe).
//
// Zip layout: ARCHIVE/data.pkl (the pickle), ARCHIVE/data/<key> (one raw little-endian storage per key),
// ARCHIVE/version, and from torch 2.x ARCHIVE/byteorder ('little' | 'big') and ARCHIVE/.data/serialization_id.
import { unzipSync } from 'fflate';
import { WeightsError, decodeFloats, fmtShape, numel, type LoadedTensor } from './safetensors.js';

// ---- pickle values -------------------------------------------------------------------------------------------

/** A storage referenced by a persistent id ('storage', torch.XStorage, key, location, numel). */
export class StorageRef {
  constructor(
    readonly key: string,
    readonly dtype: string,
    readonly numel: number,
    readonly location: string,
  ) {}
}

/** A tensor view on a storage, from torch._utils._rebuild_tensor_v2. */
export class TensorRef {
  constructor(
    readonly storage: StorageRef,
    readonly offset: number,
    readonly size: number[],
    readonly stride: number[],
  ) {}
}

/** An allow-listed global, as pushed by GLOBAL / STACK_GLOBAL. */
class Global {
  constructor(
    readonly qualname: string,
    readonly def: AllowedGlobal,
  ) {}
}

type AllowedGlobal =
  | { kind: 'callable'; call: (args: unknown[]) => unknown }
  | { kind: 'storage'; dtype: string };

const STORAGE_DTYPES: Record<string, { dtype: string; size: number }> = {
  FloatStorage: { dtype: 'F32', size: 4 },
  HalfStorage: { dtype: 'F16', size: 2 },
  BFloat16Storage: { dtype: 'BF16', size: 2 },
  DoubleStorage: { dtype: 'F64', size: 8 },
  LongStorage: { dtype: 'I64', size: 8 },
  IntStorage: { dtype: 'I32', size: 4 },
  ShortStorage: { dtype: 'I16', size: 2 },
  CharStorage: { dtype: 'I8', size: 1 },
  ByteStorage: { dtype: 'U8', size: 1 },
  BoolStorage: { dtype: 'BOOL', size: 1 },
};
const DTYPE_BYTES: Record<string, number> = Object.fromEntries(Object.values(STORAGE_DTYPES).map((d) => [d.dtype, d.size]));

const isIntList = (v: unknown): v is number[] => Array.isArray(v) && v.every((x) => Number.isSafeInteger(x) && (x as number) >= 0);

function newDict(args: unknown[]): Map<unknown, unknown> {
  const m = new Map<unknown, unknown>();
  if (args.length === 0) return m;
  // OrderedDict([(k, v), ...]) — pickle protocol 2 never needs it, but it is harmless.
  if (args.length === 1 && Array.isArray(args[0])) {
    for (const kv of args[0]) {
      if (!Array.isArray(kv) || kv.length !== 2) throw new WeightsError('corrupt pickle: OrderedDict() item is not a pair');
      m.set(kv[0], kv[1]);
    }
    return m;
  }
  throw new WeightsError('corrupt pickle: unexpected OrderedDict() arguments');
}

function rebuildTensorV2(args: unknown[]): TensorRef {
  // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
  const [storage, offset, size, stride] = args;
  if (args.length < 4 || !(storage instanceof StorageRef) || !Number.isSafeInteger(offset) || (offset as number) < 0 || !isIntList(size) || !isIntList(stride) || size.length !== stride.length) {
    throw new WeightsError('corrupt pickle: bad arguments to torch._utils._rebuild_tensor_v2');
  }
  return new TensorRef(storage, offset as number, size, stride);
}

function rebuildParameter(args: unknown[]): unknown {
  // (data, requires_grad, backward_hooks[, state]): a Parameter is its data here.
  if (!(args[0] instanceof TensorRef)) throw new WeightsError('corrupt pickle: torch._utils._rebuild_parameter without a tensor');
  return args[0];
}

/**
 * Every global a pickled state_dict may name. Nothing here runs code: each entry builds an inert JS value.
 * (torch.storage._load_from_bytes, the legacy path, is deliberately absent: it unpickles arbitrary bytes.)
 */
export const ALLOWED_GLOBALS: ReadonlyMap<string, AllowedGlobal> = new Map<string, AllowedGlobal>([
  ['collections.OrderedDict', { kind: 'callable', call: newDict }],
  ['torch._utils._rebuild_tensor_v2', { kind: 'callable', call: rebuildTensorV2 }],
  ['torch._utils._rebuild_parameter', { kind: 'callable', call: rebuildParameter }],
  ['torch._utils._rebuild_parameter_with_state', { kind: 'callable', call: rebuildParameter }],
  ...Object.entries(STORAGE_DTYPES).map(([n, d]): [string, AllowedGlobal] => [`torch.${n}`, { kind: 'storage', dtype: d.dtype }]),
]);

function refuse(qualname: string): never {
  let hint = '';
  if (/^(__main__|torchvision\.|timm\.|transformers\.|torch\.nn\.modules\.)/.test(qualname)) {
    hint = ' (the file seems to hold a whole pickled model object: save model.state_dict() with torch.save instead)';
  }
  throw new WeightsError(`refusing to load: the pickle references the global '${qualname}', which is not allowed in a state_dict${hint}`);
}

// ---- pickle VM -----------------------------------------------------------------------------------------------

const OPNAMES: Record<number, string> = {
  0x69: 'INST', 0x6f: 'OBJ', 0x82: 'EXT1', 0x83: 'EXT2', 0x84: 'EXT4', 0x92: 'NEWOBJ_EX', 0x50: 'PERSID',
  0x49: 'INT', 0x4c: 'LONG', 0x46: 'FLOAT', 0x53: 'STRING', 0x56: 'UNICODE', 0x70: 'PUT', 0x67: 'GET',
  0x96: 'BYTEARRAY8', 0x97: 'NEXT_BUFFER', 0x98: 'READONLY_BUFFER',
};

export interface UnpickleOptions {
  /** Resolves BINPERSID's persistent id (already unpickled) to a value. Without it, BINPERSID is an error. */
  persistentLoad?: (pid: unknown) => unknown;
}

/**
 * Runs a pickle (protocols 2–5, the binary opcodes) and returns the object it builds. Dicts become Map,
 * lists and tuples arrays, sets Set, bytes Uint8Array, big ints bigint. Only ALLOWED_GLOBALS may be named.
 */
export function unpickle(data: Uint8Array, opts: UnpickleOptions = {}): unknown {
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const utf8 = new TextDecoder('utf-8', { fatal: false });
  let pos = 0;
  let stack: unknown[] = [];
  const metastack: unknown[][] = [];
  const memo = new Map<number, unknown>();

  const need = (n: number) => {
    if (pos + n > data.length) throw new WeightsError(`corrupt pickle: truncated at byte ${pos} (needs ${n} more bytes)`);
  };
  const u8 = () => (need(1), data[pos++]);
  const u16 = () => (need(2), (pos += 2), dv.getUint16(pos - 2, true));
  const u32 = () => (need(4), (pos += 4), dv.getUint32(pos - 4, true));
  const i32 = () => (need(4), (pos += 4), dv.getInt32(pos - 4, true));
  const u64 = () => {
    need(8);
    const lo = dv.getUint32(pos, true);
    const hi = dv.getUint32(pos + 4, true);
    pos += 8;
    const v = hi * 2 ** 32 + lo;
    if (!Number.isSafeInteger(v)) throw new WeightsError('corrupt pickle: 64-bit length too large');
    return v;
  };
  const bytes = (n: number) => (need(n), (pos += n), data.subarray(pos - n, pos));
  const str = (n: number) => utf8.decode(bytes(n));
  const latin1 = (b: Uint8Array) => {
    let s = '';
    for (let i = 0; i < b.length; i++) s += String.fromCharCode(b[i]);
    return s;
  };
  const line = () => {
    const end = data.indexOf(0x0a, pos);
    if (end < 0) throw new WeightsError('corrupt pickle: unterminated GLOBAL');
    const s = utf8.decode(data.subarray(pos, end));
    pos = end + 1;
    return s;
  };
  const pop = () => {
    if (stack.length === 0) throw new WeightsError(`corrupt pickle: stack underflow at byte ${pos}`);
    return stack.pop();
  };
  const top = () => {
    if (stack.length === 0) throw new WeightsError(`corrupt pickle: stack underflow at byte ${pos}`);
    return stack[stack.length - 1];
  };
  const popMark = () => {
    const items = stack;
    const prev = metastack.pop();
    if (!prev) throw new WeightsError(`corrupt pickle: no MARK before byte ${pos}`);
    stack = prev;
    return items;
  };
  const resolve = (module: string, name: string) => {
    const qualname = `${module}.${name}`;
    const def = ALLOWED_GLOBALS.get(qualname);
    if (!def) refuse(qualname);
    return new Global(qualname, def);
  };
  const setItems = (d: unknown, kv: unknown[]) => {
    if (!(d instanceof Map)) throw new WeightsError('corrupt pickle: SETITEM(S) on a non-dict');
    for (let i = 0; i + 1 < kv.length; i += 2) d.set(kv[i], kv[i + 1]);
  };
  const appendItems = (l: unknown, items: unknown[]) => {
    if (!Array.isArray(l)) throw new WeightsError('corrupt pickle: APPEND(S) on a non-list');
    for (const x of items) l.push(x);
  };
  const callGlobal = (fn: unknown, args: unknown, op: string): unknown => {
    if (!(fn instanceof Global)) throw new WeightsError(`corrupt pickle: ${op} on something that is not a global`);
    if (fn.def.kind !== 'callable') throw new WeightsError(`refusing to load: the pickle calls '${fn.qualname}', which a state_dict never does`);
    if (!Array.isArray(args)) throw new WeightsError(`corrupt pickle: ${op} arguments are not a tuple`);
    return fn.def.call(args);
  };

  for (;;) {
    const at = pos;
    const op = u8();
    switch (op) {
      case 0x80: u8(); break; // PROTO
      case 0x95: u64(); break; // FRAME (framing is only a read-ahead hint)
      case 0x2e: { // STOP
        const result = pop();
        return result;
      }
      case 0x28: metastack.push(stack); stack = []; break; // MARK
      case 0x7d: stack.push(new Map()); break; // EMPTY_DICT
      case 0x5d: stack.push([]); break; // EMPTY_LIST
      case 0x29: stack.push([]); break; // EMPTY_TUPLE
      case 0x8f: stack.push(new Set()); break; // EMPTY_SET
      case 0x58: stack.push(str(u32())); break; // BINUNICODE
      case 0x8c: stack.push(str(u8())); break; // SHORT_BINUNICODE
      case 0x8d: stack.push(str(u64())); break; // BINUNICODE8
      case 0x54: { // BINSTRING (Python 2 str)
        const n = i32();
        if (n < 0) throw new WeightsError('corrupt pickle: negative BINSTRING length');
        stack.push(latin1(bytes(n)));
        break;
      }
      case 0x55: stack.push(latin1(bytes(u8()))); break; // SHORT_BINSTRING
      case 0x42: stack.push(bytes(u32()).slice()); break; // BINBYTES
      case 0x43: stack.push(bytes(u8()).slice()); break; // SHORT_BINBYTES
      case 0x8e: stack.push(bytes(u64()).slice()); break; // BINBYTES8
      case 0x4a: stack.push(i32()); break; // BININT
      case 0x4b: stack.push(u8()); break; // BININT1
      case 0x4d: stack.push(u16()); break; // BININT2
      case 0x8a: case 0x8b: { // LONG1, LONG4: little-endian two's complement
        const n = op === 0x8a ? u8() : i32();
        if (n < 0) throw new WeightsError('corrupt pickle: negative LONG4 length');
        const b = bytes(n);
        let v = 0n;
        for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
        if (n > 0 && b[n - 1] & 0x80) v -= 1n << BigInt(8 * n);
        stack.push(v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v);
        break;
      }
      case 0x47: need(8); stack.push(dv.getFloat64(pos, false)); pos += 8; break; // BINFLOAT (big-endian)
      case 0x88: stack.push(true); break; // NEWTRUE
      case 0x89: stack.push(false); break; // NEWFALSE
      case 0x4e: stack.push(null); break; // NONE
      case 0x74: { const t = popMark(); stack.push(t); break; } // TUPLE
      case 0x85: stack.push([pop()]); break; // TUPLE1
      case 0x86: { const b = pop(); const a = pop(); stack.push([a, b]); break; } // TUPLE2
      case 0x87: { const c = pop(); const b = pop(); const a = pop(); stack.push([a, b, c]); break; } // TUPLE3
      case 0x6c: { const l = popMark(); stack.push(l); break; } // LIST
      case 0x64: { const kv = popMark(); const d = new Map(); setItems(d, kv); stack.push(d); break; } // DICT
      case 0x91: { const s = new Set(popMark()); stack.push(s); break; } // FROZENSET
      case 0x73: { const v = pop(); const k = pop(); setItems(top(), [k, v]); break; } // SETITEM
      case 0x75: { const kv = popMark(); setItems(top(), kv); break; } // SETITEMS
      case 0x61: { const v = pop(); appendItems(top(), [v]); break; } // APPEND
      case 0x65: { const items = popMark(); appendItems(top(), items); break; } // APPENDS
      case 0x90: { // ADDITEMS
        const items = popMark();
        const s = top();
        if (!(s instanceof Set)) throw new WeightsError('corrupt pickle: ADDITEMS on a non-set');
        for (const x of items) s.add(x);
        break;
      }
      case 0x71: memo.set(u8(), top()); break; // BINPUT
      case 0x72: memo.set(u32(), top()); break; // LONG_BINPUT
      case 0x94: memo.set(memo.size, top()); break; // MEMOIZE
      case 0x68: case 0x6a: { // BINGET, LONG_BINGET
        const i = op === 0x68 ? u8() : u32();
        if (!memo.has(i)) throw new WeightsError(`corrupt pickle: memo entry ${i} read before it was written`);
        stack.push(memo.get(i));
        break;
      }
      case 0x30: pop(); break; // POP
      case 0x31: popMark(); break; // POP_MARK
      case 0x32: stack.push(top()); break; // DUP
      case 0x63: { const module = line(); const name = line(); stack.push(resolve(module, name)); break; } // GLOBAL
      case 0x93: { // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') throw new WeightsError('corrupt pickle: STACK_GLOBAL needs two strings');
        stack.push(resolve(module, name));
        break;
      }
      case 0x52: { const args = pop(); const fn = pop(); stack.push(callGlobal(fn, args, 'REDUCE')); break; } // REDUCE
      case 0x81: { // NEWOBJ: cls.__new__(cls, *args) — only dicts
        const args = pop();
        const cls = pop();
        if (!(cls instanceof Global) || cls.qualname !== 'collections.OrderedDict') {
          throw new WeightsError(`refusing to load: NEWOBJ of '${cls instanceof Global ? cls.qualname : typeof cls}'`);
        }
        stack.push(callGlobal(cls, args, 'NEWOBJ'));
        break;
      }
      case 0x62: { // BUILD: obj.__setstate__(state) — only OrderedDict's attributes (e.g. state_dict._metadata)
        const state = pop();
        const obj = top();
        if (!(obj instanceof Map) && !(obj instanceof TensorRef)) throw new WeightsError('corrupt pickle: BUILD on an unsupported object');
        void state; // attributes (the state_dict's _metadata versions) are not needed
        break;
      }
      case 0x51: { // BINPERSID
        const pid = pop();
        if (!opts.persistentLoad) throw new WeightsError('corrupt pickle: persistent id without a loader');
        stack.push(opts.persistentLoad(pid));
        break;
      }
      default: {
        const name = OPNAMES[op];
        throw new WeightsError(
          `unsupported pickle opcode ${name ?? `0x${op.toString(16).padStart(2, '0')}`} at byte ${at}` +
            (name ? ' (torch.save writes protocol 2; re-save with torch.save(model.state_dict(), path))' : ': corrupt or not a pickle'),
        );
      }
    }
  }
}

// ---- torch zip checkpoints -----------------------------------------------------------------------------------

export interface TorchCheckpoint {
  tensors: Map<string, LoadedTensor>;
  notes: string[];
  /** The key of the top-level dict holding the state dict ('model', 'state_dict', …), if it was not top-level. */
  sourceKey?: string;
}

const STATE_DICT_KEYS = ['state_dict', 'model', 'model_state_dict', 'module', 'net'];

export const isZip = (b: Uint8Array): boolean => b.length >= 4 && b[0] === 0x50 && b[1] === 0x4b && b[2] === 0x03 && b[3] === 0x04;

function decodeStorage(bytes: Uint8Array, dtype: string, bigEndian: boolean): Float32Array {
  if (dtype === 'F32' || dtype === 'F16' || dtype === 'BF16' || dtype === 'F64') return decodeFloats(bytes, 0, bytes.length, dtype, bigEndian);
  const size = DTYPE_BYTES[dtype];
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = bytes.length / size;
  const out = new Float32Array(n);
  const le = !bigEndian;
  for (let i = 0; i < n; i++) {
    const o = i * size;
    switch (dtype) {
      case 'I64': out[i] = Number(dv.getBigInt64(o, le)); break;
      case 'I32': out[i] = dv.getInt32(o, le); break;
      case 'I16': out[i] = dv.getInt16(o, le); break;
      case 'I8': out[i] = dv.getInt8(o); break;
      default: out[i] = bytes[o]; // U8, BOOL
    }
  }
  return out;
}

/** Copies a strided view of `src` into a dense row-major Float32Array. */
export function materialise(src: Float32Array, offset: number, size: readonly number[], stride: readonly number[], what: string): Float32Array {
  const n = numel(size);
  if (n === 0) return new Float32Array(0);
  let last = offset;
  for (let d = 0; d < size.length; d++) last += (size[d] - 1) * stride[d];
  if (last >= src.length) {
    throw new WeightsError(`${what}: view (offset ${offset}, size ${fmtShape(size)}, stride ${fmtShape(stride)}) runs past its storage of ${src.length} elements`);
  }
  let contiguous = true;
  for (let d = size.length - 1, expect = 1; d >= 0; d--) {
    if (size[d] !== 1 && stride[d] !== expect) contiguous = false;
    expect *= size[d];
  }
  if (contiguous) return src.slice(offset, offset + n);
  const out = new Float32Array(n);
  const rank = size.length;
  const idx = new Array<number>(rank).fill(0);
  let p = offset;
  for (let i = 0; i < n; i++) {
    out[i] = src[p];
    for (let d = rank - 1; d >= 0; d--) {
      if (++idx[d] < size[d]) {
        p += stride[d];
        break;
      }
      p -= (size[d] - 1) * stride[d];
      idx[d] = 0;
    }
  }
  return out;
}

/**
 * Reads a PyTorch zip checkpoint holding a state_dict (or a dict with the state_dict under 'state_dict',
 * 'model', 'model_state_dict', …). Every tensor is materialised as dense float32 (F16/BF16/F64 converted).
 */
export function readTorchCheckpoint(bytes: Uint8Array): TorchCheckpoint {
  if (!isZip(bytes)) {
    if (bytes.length >= 2 && bytes[0] === 0x80 && bytes[1] <= 5) {
      throw new WeightsError(
        'this is a legacy (pre-1.6, non-zip) PyTorch file, which CelluScan does not read: re-save it with a modern torch (>= 1.6): torch.save(torch.load(path), new_path)',
      );
    }
    if (bytes.length > 262 && String.fromCharCode(...bytes.subarray(257, 262)) === 'ustar') {
      throw new WeightsError('this is a legacy tar-format PyTorch file: re-save it with a modern torch (>= 1.6)');
    }
    throw new WeightsError('not a PyTorch checkpoint (no zip signature) and not recognised');
  }
  let index: Record<string, Uint8Array>;
  const names: string[] = [];
  try {
    index = unzipSync(bytes, {
      filter: (f) => {
        names.push(f.name);
        return /^[^/]+\/(data\.pkl|byteorder)$/.test(f.name);
      },
    });
  } catch (e) {
    throw new WeightsError(`corrupt zip in the PyTorch checkpoint: ${(e as Error).message}`);
  }
  const pkls = Object.keys(index).filter((n) => n.endsWith('/data.pkl'));
  if (pkls.length !== 1) {
    if (names.some((n) => /\/constants\.pkl$/.test(n))) {
      throw new WeightsError('this is a TorchScript archive (torch.jit.save): save model.state_dict() with torch.save instead');
    }
    throw new WeightsError(`not a PyTorch checkpoint: expected one ARCHIVE/data.pkl in the zip, found ${pkls.length}`);
  }
  const prefix = pkls[0].slice(0, -'data.pkl'.length);
  const byteorderRaw = index[prefix + 'byteorder'];
  const byteorder = byteorderRaw ? new TextDecoder().decode(byteorderRaw).trim() : 'little';
  if (byteorder !== 'little' && byteorder !== 'big') throw new WeightsError(`unknown byteorder '${byteorder}' in the checkpoint`);

  const storages = new Map<string, StorageRef>();
  const root = unpickle(index[pkls[0]], {
    persistentLoad: (pid) => {
      if (!Array.isArray(pid) || pid[0] !== 'storage' || pid.length < 5) throw new WeightsError('corrupt pickle: unknown persistent id');
      const [, type, key, location, n] = pid;
      if (!(type instanceof Global) || type.def.kind !== 'storage') throw new WeightsError('corrupt pickle: persistent id without a storage type');
      if (typeof key !== 'string' || !/^[\w.-]+$/.test(key) || !Number.isSafeInteger(n)) throw new WeightsError('corrupt pickle: bad storage key');
      let s = storages.get(key);
      if (!s) {
        s = new StorageRef(key, type.def.dtype, n as number, String(location));
        storages.set(key, s);
      }
      return s;
    },
  });

  // Find the state dict.
  const notes: string[] = [];
  const hasTensors = (v: unknown): v is Map<unknown, unknown> => v instanceof Map && [...v.values()].some((x) => x instanceof TensorRef);
  let sd: Map<unknown, unknown>;
  let sourceKey: string | undefined;
  if (hasTensors(root)) sd = root;
  else if (root instanceof Map) {
    const key = STATE_DICT_KEYS.find((k) => hasTensors(root.get(k)));
    if (key === undefined) {
      const keys = [...root.keys()].map((k) => JSON.stringify(k)).slice(0, 20);
      throw new WeightsError(`the checkpoint holds no tensors at top level nor under ${STATE_DICT_KEYS.map((k) => `'${k}'`).join('/')} (top-level keys: ${keys.join(', ')})`);
    }
    sd = root.get(key) as Map<unknown, unknown>;
    sourceKey = key;
    notes.push(`using the state dict stored under the checkpoint's '${key}' key`);
  } else {
    throw new WeightsError('the checkpoint does not hold a dict (state_dict) of tensors');
  }

  // Load the referenced storages only.
  const wanted = new Set<string>();
  for (const v of sd.values()) if (v instanceof TensorRef) wanted.add(prefix + 'data/' + v.storage.key);
  let files: Record<string, Uint8Array>;
  try {
    files = unzipSync(bytes, { filter: (f) => wanted.has(f.name) });
  } catch (e) {
    throw new WeightsError(`corrupt zip in the PyTorch checkpoint: ${(e as Error).message}`);
  }
  const decoded = new Map<string, Float32Array>();
  const storageData = (s: StorageRef, name: string): Float32Array => {
    let d = decoded.get(s.key);
    if (d) return d;
    const raw = files[prefix + 'data/' + s.key];
    if (!raw) throw new WeightsError(`tensor '${name}': its storage data/${s.key} is missing from the checkpoint`);
    const size = DTYPE_BYTES[s.dtype];
    if (raw.length % size !== 0 || raw.length / size < s.numel) {
      throw new WeightsError(`tensor '${name}': storage data/${s.key} has ${raw.length} bytes, expected ${s.numel} × ${size}`);
    }
    d = decodeStorage(raw.subarray(0, s.numel * size), s.dtype, byteorder === 'big');
    decoded.set(s.key, d);
    return d;
  };

  const tensors = new Map<string, LoadedTensor>();
  const skipped: string[] = [];
  for (const [k, v] of sd) {
    const name = String(k);
    if (!(v instanceof TensorRef)) {
      skipped.push(name);
      continue;
    }
    const data = materialise(storageData(v.storage, name), v.offset, v.size, v.stride, `tensor '${name}'`);
    tensors.set(name, { dtype: v.storage.dtype, shape: [...v.size], data });
  }
  if (skipped.length) notes.push(`ignored ${skipped.length} non-tensor entr${skipped.length === 1 ? 'y' : 'ies'}: ${skipped.slice(0, 10).join(', ')}`);
  return { tensors, notes, sourceKey };
}
