/**
 * safetensors header reader (DESIGN rule 7: validate every offset, size and count before use).
 *
 * Only the header is read (fs.open + read); the tensor data stays on disk and is memory-mapped by the
 * native core from the absolute offsets returned here. Every error is an `Error` whose message starts
 * with the file path and names the offending field or tensor.
 */
import * as fs from 'fs';

export type Dtype = 'F32' | 'F16' | 'BF16';

export const DTYPE_SIZES: Readonly<Record<Dtype, number>> = { F32: 4, F16: 2, BF16: 2 };

/** Largest header accepted (the reference implementation uses the same 100 MB limit). */
export const MAX_HEADER_BYTES = 100 * 1000 * 1000;

export interface TensorInfo {
  dtype: Dtype;
  shape: number[];
  /** Absolute byte offset of the tensor's data in the file. */
  offset: number;
  nbytes: number;
}

export interface SafetensorsFile {
  path: string;
  tensors: Map<string, TensorInfo>;
  metadata: Record<string, string>;
  /** Size in bytes of the length prefix plus the JSON header (= absolute offset of the data section). */
  dataStart: number;
}

function fail(path: string, msg: string): never {
  throw new Error(`${path}: ${msg}`);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function readFully(fd: number, buf: Buffer, position: number, path: string, what: string): void {
  let done = 0;
  while (done < buf.length) {
    const n = fs.readSync(fd, buf, done, buf.length - done, position + done);
    if (n === 0) fail(path, `file truncated while reading ${what} (got ${done} of ${buf.length} bytes)`);
    done += n;
  }
}

/** Parses and validates the header of a safetensors file. Synchronous core used by `readSafetensors`. */
export function readSafetensorsSync(path: string): SafetensorsFile {
  let fd: number;
  try {
    fd = fs.openSync(path, 'r');
  } catch (e) {
    fail(path, `cannot open: ${(e as Error).message}`);
  }
  try {
    const fileSize = fs.fstatSync(fd).size;
    if (fileSize < 8) fail(path, `file is ${fileSize} bytes, too small for the 8-byte header length prefix`);
    const prefix = Buffer.alloc(8);
    readFully(fd, prefix, 0, path, 'the header length prefix');
    const headerLen = prefix.readBigUInt64LE(0);
    if (headerLen > BigInt(MAX_HEADER_BYTES)) {
      fail(path, `header length prefix ${headerLen} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
    }
    if (headerLen > BigInt(fileSize - 8)) {
      fail(path, `header length prefix ${headerLen} goes beyond the end of the file (file size ${fileSize})`);
    }
    const hlen = Number(headerLen);
    if (hlen < 2) fail(path, `header length prefix ${hlen} is too small for a JSON object`);
    const headerBuf = Buffer.alloc(hlen);
    readFully(fd, headerBuf, 8, path, 'the JSON header');

    let text: string;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(headerBuf);
    } catch {
      fail(path, 'header is not valid UTF-8');
    }
    let header: unknown;
    try {
      header = JSON.parse(text);
    } catch (e) {
      fail(path, `header is not valid JSON: ${(e as Error).message}`);
    }
    if (!isPlainObject(header)) fail(path, 'header is not a JSON object');

    const dataStart = 8 + hlen;
    const dataSize = fileSize - dataStart;
    const metadata: Record<string, string> = {};
    const entries: { name: string; dtype: Dtype; shape: number[]; begin: number; end: number }[] = [];

    for (const [name, value] of Object.entries(header)) {
      if (name === '__metadata__') {
        if (!isPlainObject(value)) fail(path, '__metadata__ must be an object of string values');
        for (const [k, v] of Object.entries(value)) {
          if (typeof v !== 'string') fail(path, `__metadata__.${k} must be a string, got ${typeof v}`);
          metadata[k] = v;
        }
        continue;
      }
      const where = `tensor "${name}"`;
      if (!isPlainObject(value)) fail(path, `${where}: entry must be an object`);
      const dtype = value.dtype;
      if (typeof dtype !== 'string') fail(path, `${where}: dtype missing or not a string`);
      if (!(dtype in DTYPE_SIZES)) {
        fail(path, `${where}: unsupported dtype "${dtype}" (supported: F32, F16, BF16)`);
      }
      const shape = value.shape;
      if (!Array.isArray(shape)) fail(path, `${where}: shape must be an array`);
      for (const d of shape) {
        if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) {
          fail(path, `${where}: shape ${JSON.stringify(shape)} must hold non-negative integers`);
        }
      }
      const offs = value.data_offsets;
      if (!Array.isArray(offs) || offs.length !== 2) fail(path, `${where}: data_offsets must be [begin, end]`);
      const [begin, end] = offs as unknown[];
      if (
        typeof begin !== 'number' || typeof end !== 'number' ||
        !Number.isSafeInteger(begin) || !Number.isSafeInteger(end) || begin < 0 || end < begin
      ) {
        fail(path, `${where}: data_offsets ${JSON.stringify(offs)} must be integers with 0 <= begin <= end`);
      }
      let count = 1;
      for (const d of shape as number[]) count *= d;
      const expected = count * DTYPE_SIZES[dtype as Dtype];
      if (!Number.isSafeInteger(expected) || expected !== end - begin) {
        fail(
          path,
          `${where}: shape ${JSON.stringify(shape)} x ${dtype} is ${expected} bytes but data_offsets span ${end - begin}`,
        );
      }
      entries.push({ name, dtype: dtype as Dtype, shape: (shape as number[]).slice(), begin, end });
    }

    entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
    let pos = 0;
    for (const e of entries) {
      if (e.begin < pos) fail(path, `tensor "${e.name}": data_offsets [${e.begin}, ${e.end}] overlap the previous tensor (ends at ${pos})`);
      if (e.begin > pos) fail(path, `tensor "${e.name}": gap in the data section before data_offsets [${e.begin}, ${e.end}] (previous tensor ends at ${pos})`);
      pos = e.end;
    }
    if (pos > dataSize) {
      const last = entries[entries.length - 1];
      fail(path, `tensor "${last.name}": data_offsets end ${pos} goes beyond the data section (${dataSize} bytes): file truncated`);
    }
    if (pos !== dataSize) {
      fail(path, `data section is ${dataSize} bytes but the tensors cover ${pos}: the data does not end at the end of the file`);
    }

    const tensors = new Map<string, TensorInfo>();
    for (const e of entries) {
      tensors.set(e.name, { dtype: e.dtype, shape: e.shape, offset: dataStart + e.begin, nbytes: e.end - e.begin });
    }
    return { path, tensors, metadata, dataStart };
  } finally {
    fs.closeSync(fd);
  }
}

/** Parses and validates the header of a safetensors file (reads only the header bytes). */
export async function readSafetensors(path: string): Promise<SafetensorsFile> {
  return readSafetensorsSync(path);
}

export interface WriteTensor {
  dtype: string;
  shape: number[];
  /** Raw little-endian bytes; for F32 a Float32Array may be given. */
  data: Uint8Array | Float32Array;
  /** Overrides the computed data_offsets (to build deliberately broken files in tests). */
  dataOffsets?: [number, number];
}

/**
 * Writes a safetensors file. Used by tests to build good and deliberately bad files; `extraHeader`
 * and `dataOffsets` allow arbitrary header content, `rawHeader` replaces the JSON text entirely.
 */
export function writeSafetensors(
  path: string,
  tensors: Record<string, WriteTensor>,
  opts: { metadata?: Record<string, string>; rawHeader?: Buffer; headerLengthOverride?: bigint; trailing?: Uint8Array } = {},
): void {
  const header: Record<string, unknown> = {};
  if (opts.metadata) header.__metadata__ = opts.metadata;
  const chunks: Buffer[] = [];
  let pos = 0;
  for (const [name, t] of Object.entries(tensors)) {
    const bytes = Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: t.dataOffsets ?? [pos, pos + bytes.length] };
    chunks.push(bytes);
    pos += bytes.length;
  }
  let headerBuf = opts.rawHeader ?? Buffer.from(JSON.stringify(header), 'utf8');
  if (!opts.rawHeader) {
    // Pad with spaces to a multiple of 8 like the reference writer (keeps F32 data aligned).
    const pad = (8 - (headerBuf.length % 8)) % 8;
    headerBuf = Buffer.concat([headerBuf, Buffer.alloc(pad, 0x20)]);
  }
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(opts.headerLengthOverride ?? BigInt(headerBuf.length));
  const parts = [prefix, headerBuf, ...chunks];
  if (opts.trailing) parts.push(Buffer.from(opts.trailing));
  fs.writeFileSync(path, Buffer.concat(parts));
}
