/**
 * PyTorch `pytorch_model.bin` (torch.save zip format) read without Python and without executing anything.
 *
 * The archive's `<prefix>/data.pkl` is interpreted by the data-only unpickler in ./pickle (allow-listed
 * globals only); each tensor's storage is a stored zip entry `<prefix>/data/<key>`, whose absolute file offset
 * is computed here so the native core can memory-map the bytes in place, exactly like safetensors. Every
 * storage size, tensor offset, shape and stride is checked against the entry it points into.
 *
 * Non-contiguous tensors (rare in a state_dict) cannot be mapped in place: `convertToSafetensors(dir)` copies
 * them into a model.safetensors, which then loads directly.
 */
import * as fs from 'fs';
import * as path from 'path';

import { PickleError, PickleStorageRef, PickleTensor, PyDict, PyGlobal, PyTuple, unpickle } from './pickle';
import { looksLikeZip, readAt, readStoredEntry, readZipDirectory, ZipDirectory } from './pytorch-zip';
import { writeSafetensors, WriteTensor } from './safetensors';

export type PtDtype = 'F32' | 'F16' | 'BF16' | 'I64';
export const PT_DTYPE_SIZES: Readonly<Record<PtDtype, number>> = { F32: 4, F16: 2, BF16: 2, I64: 8 };

const STORAGE_DTYPES: Record<string, PtDtype> = {
  'torch.FloatStorage': 'F32',
  'torch.HalfStorage': 'F16',
  'torch.BFloat16Storage': 'BF16',
  'torch.LongStorage': 'I64',
};

const MAX_PICKLE_BYTES = 256 * 1024 * 1024;

export interface PtTensorInfo {
  dtype: PtDtype;
  shape: number[];
  stride: number[];
  /** Element offset of the tensor's first element in its storage. */
  storageOffset: number;
  /** Storage entry name in the archive, its absolute data offset and byte size. */
  storageEntry: string;
  storageDataOffset: number;
  storageBytes: number;
  /** Row-major contiguous: the data is the byte range [offset, offset + nbytes) of the file. */
  contiguous: boolean;
  /** Absolute byte offset of the first element in the file. */
  offset: number;
  /** shape product × element size. */
  nbytes: number;
}

export interface PytorchCheckpoint {
  path: string;
  /** Archive folder name (torch.save uses the file's stem or "archive"). */
  prefix: string;
  tensors: Map<string, PtTensorInfo>;
}

function fail(file: string, msg: string): never {
  throw new Error(`${file}: ${msg}`);
}

function product(shape: number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Reads and validates a torch.save zip checkpoint holding a (possibly nested under "state_dict") state_dict. */
export function readPytorchCheckpointSync(file: string): PytorchCheckpoint {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (e) {
    fail(file, `cannot open: ${(e as Error).message}`);
  }
  try {
    if (!looksLikeZip(fd)) {
      const head = Buffer.alloc(2);
      fs.readSync(fd, head, 0, 2, 0);
      const legacy = head[0] === 0x80; // a bare pickle: the pre-1.6 torch.save format
      fail(
        file,
        legacy
          ? 'legacy (pre-PyTorch 1.6, non-zip) checkpoint format is not supported; re-save it with a recent torch ' +
              '(torch.save(torch.load(f), f)) or as safetensors (model.save_pretrained(dir))'
          : 'not a PyTorch zip checkpoint (no ZIP header)',
      );
    }
    const dir = readZipDirectory(fd, file);
    const pkls = [...dir.entries.keys()].filter((n) => n === 'data.pkl' || /^[^/]+\/data\.pkl$/.test(n));
    if (pkls.length !== 1) fail(file, `expected exactly one "<name>/data.pkl" in the archive, found ${pkls.length}`);
    const pklName = pkls[0];
    const prefix = pklName.includes('/') ? pklName.slice(0, pklName.indexOf('/')) : '';
    const pre = prefix ? `${prefix}/` : '';
    const bo = dir.entries.get(`${pre}byteorder`);
    if (bo) {
      const order = readStoredEntry(fd, dir, bo, 16).toString('utf8').trim();
      if (order !== 'little') fail(file, `byteorder "${order}" is not supported (little-endian only)`);
    }
    const pkl = readStoredEntry(fd, dir, dir.entries.get(pklName)!, MAX_PICKLE_BYTES);
    const storages = new Map<string, PickleStorageRef>();
    const persistentLoad = (pid: unknown): unknown => {
      if (!(pid instanceof PyTuple) || pid.items.length !== 5 || pid.items[0] !== 'storage') {
        throw new PickleError('persistent id must be a ("storage", type, key, location, numel) tuple');
      }
      const [, type, key, location, numel] = pid.items;
      if (!(type instanceof PyGlobal) || !(type.qualified in STORAGE_DTYPES)) {
        throw new PickleError(`persistent id: storage type must be one of ${Object.keys(STORAGE_DTYPES).join(', ')}`);
      }
      if (typeof key !== 'string' || !/^[0-9A-Za-z_.-]{1,64}$/.test(key)) throw new PickleError(`persistent id: bad storage key ${JSON.stringify(key)}`);
      if (typeof location !== 'string') throw new PickleError('persistent id: location must be a string');
      if (typeof numel !== 'number' || !Number.isSafeInteger(numel) || numel < 0) throw new PickleError('persistent id: numel must be a non-negative integer');
      const prev = storages.get(key);
      if (prev && (prev.storageType !== type.qualified || prev.numel !== numel)) {
        throw new PickleError(`persistent id: storage "${key}" is declared twice with different types or sizes`);
      }
      const ref: PickleStorageRef = prev ?? { storageType: type.qualified, key, location, numel };
      storages.set(key, ref);
      return ref;
    };
    let root: unknown;
    try {
      root = unpickle(pkl, persistentLoad);
    } catch (e) {
      if (e instanceof PickleError) fail(file, `${pklName}: ${e.message}`);
      throw e;
    }
    if (root instanceof PyDict && !hasTensorValues(root) && root.map.get('state_dict') instanceof PyDict) {
      root = root.map.get('state_dict');
    }
    if (!(root instanceof PyDict)) fail(file, `${pklName}: the checkpoint is not a state_dict (a dict of tensors)`);
    const tensors = new Map<string, PtTensorInfo>();
    for (const [k, v] of root.map) {
      if (typeof k !== 'string') fail(file, `state_dict key ${String(k)} is not a string`);
      if (!v || typeof v !== 'object' || (v as PickleTensor).kind !== 'tensor') {
        fail(file, `state_dict entry "${k}" is not a tensor`);
      }
      tensors.set(k, tensorInfo(file, dir, pre, k, v as PickleTensor));
    }
    return { path: file, prefix, tensors };
  } finally {
    fs.closeSync(fd);
  }
}

function hasTensorValues(d: PyDict): boolean {
  for (const v of d.map.values()) if (v && typeof v === 'object' && (v as PickleTensor).kind === 'tensor') return true;
  return false;
}

function tensorInfo(file: string, dir: ZipDirectory, pre: string, name: string, t: PickleTensor): PtTensorInfo {
  const where = `tensor "${name}"`;
  const dtype = STORAGE_DTYPES[t.storage.storageType];
  const esize = PT_DTYPE_SIZES[dtype];
  const entryName = `${pre}data/${t.storage.key}`;
  const e = dir.entries.get(entryName);
  if (!e) fail(file, `${where}: storage entry "${entryName}" is missing from the archive`);
  if (e.method !== 0) fail(file, `${where}: storage entry "${entryName}" is compressed (method ${e.method}); only stored entries can be mapped`);
  if (t.storage.numel * esize !== e.size) {
    fail(file, `${where}: storage "${t.storage.key}" declares ${t.storage.numel} × ${esize} bytes but its archive entry holds ${e.size} bytes`);
  }
  const { size, stride, storageOffset } = t;
  const count = product(size);
  if (!Number.isSafeInteger(count * esize)) fail(file, `${where}: shape [${size.join(', ')}] is too large`);
  if (count > 0) {
    let last = storageOffset;
    for (let i = 0; i < size.length; i++) last += (size[i] - 1) * stride[i];
    if (!Number.isSafeInteger(last) || last >= t.storage.numel) {
      fail(
        file,
        `${where}: shape [${size.join(', ')}], stride [${stride.join(', ')}] and offset ${storageOffset} reach element ${last} ` +
          `but storage "${t.storage.key}" holds ${t.storage.numel} elements`,
      );
    }
  } else if (storageOffset > t.storage.numel) {
    fail(file, `${where}: storage offset ${storageOffset} is past the end of storage "${t.storage.key}" (${t.storage.numel} elements)`);
  }
  let contiguous = true;
  let expect = 1;
  for (let i = size.length - 1; i >= 0; i--) {
    if (size[i] !== 1 && stride[i] !== expect) contiguous = false;
    expect *= size[i];
  }
  return {
    dtype,
    shape: size.slice(),
    stride: stride.slice(),
    storageOffset,
    storageEntry: entryName,
    storageDataOffset: e.dataOffset,
    storageBytes: e.size,
    contiguous,
    offset: e.dataOffset + storageOffset * esize,
    nbytes: count * esize,
  };
}

export async function readPytorchCheckpoint(file: string): Promise<PytorchCheckpoint> {
  return readPytorchCheckpointSync(file);
}

/** The tensor's elements in row-major order as little-endian bytes (gathers non-contiguous tensors). */
export function readPytorchTensorBytes(ckpt: PytorchCheckpoint, name: string, fd?: number): Buffer {
  const t = ckpt.tensors.get(name);
  if (!t) fail(ckpt.path, `no tensor "${name}"`);
  const own = fd === undefined;
  const f = own ? fs.openSync(ckpt.path, 'r') : fd!;
  try {
    if (t.contiguous) return readAt(f, ckpt.path, t.offset, t.nbytes, `tensor "${name}"`);
    const esize = PT_DTYPE_SIZES[t.dtype];
    const storage = readAt(f, ckpt.path, t.storageDataOffset, t.storageBytes, `storage of tensor "${name}"`);
    const out = Buffer.alloc(t.nbytes);
    const n = product(t.shape);
    const idx = new Array<number>(t.shape.length).fill(0);
    for (let i = 0; i < n; i++) {
      let src = t.storageOffset;
      for (let d = 0; d < idx.length; d++) src += idx[d] * t.stride[d];
      storage.copy(out, i * esize, src * esize, src * esize + esize);
      for (let d = idx.length - 1; d >= 0; d--) {
        if (++idx[d] < t.shape[d]) break;
        idx[d] = 0;
      }
    }
    return out;
  } finally {
    if (own) fs.closeSync(f);
  }
}

export interface ConvertResult {
  source: string;
  output: string;
  tensors: number;
  /** Non-float tensors left out (buffers such as embeddings.position_ids that HF does not load). */
  skipped: string[];
}

/**
 * Writes `<dir>/model.safetensors` from `<dir>/pytorch_model.bin` (float tensors, non-contiguous ones copied
 * into row-major order; int64 buffers such as `position_ids` skipped). Refuses to overwrite unless `overwrite`.
 */
export function convertToSafetensors(dir: string, options: { overwrite?: boolean; output?: string } = {}): ConvertResult {
  const source = path.join(dir, 'pytorch_model.bin');
  if (!fs.existsSync(source)) fail(source, 'not found');
  const output = options.output ?? path.join(dir, 'model.safetensors');
  if (fs.existsSync(output) && !options.overwrite) fail(output, 'already exists (pass { overwrite: true } to replace it)');
  const ckpt = readPytorchCheckpointSync(source);
  const fd = fs.openSync(source, 'r');
  const out: Record<string, WriteTensor> = {};
  const skipped: string[] = [];
  try {
    for (const [name, t] of ckpt.tensors) {
      if (t.dtype === 'I64') {
        skipped.push(name);
        continue;
      }
      out[name] = { dtype: t.dtype, shape: t.shape, data: readPytorchTensorBytes(ckpt, name, fd) };
    }
  } finally {
    fs.closeSync(fd);
  }
  const tmp = `${output}.tmp-${process.pid}`;
  writeSafetensors(tmp, out, { metadata: { format: 'pt' } });
  fs.renameSync(tmp, output);
  return { source, output, tensors: Object.keys(out).length, skipped };
}
