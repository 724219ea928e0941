/**
 * A read-only ZIP directory reader for PyTorch checkpoints (torch.save's zip format), DESIGN rule 7: every
 * offset, size and count is checked against the file before use. Only *stored* (uncompressed) entries can be
 * read, which is what torch.save writes; a compressed or encrypted entry is an error naming it. Entry data is
 * never read here unless asked for: callers get the absolute file offset of each entry's bytes, so tensor
 * data can be memory-mapped in place by the native core.
 */
import * as fs from 'fs';

export interface ZipEntry {
  name: string;
  /** Compression method (0 = stored). */
  method: number;
  /** Uncompressed size in bytes. */
  size: number;
  /** Absolute file offset of the entry's data (stored entries only; -1 for others). */
  dataOffset: number;
}

export interface ZipDirectory {
  path: string;
  fileSize: number;
  entries: Map<string, ZipEntry>;
}

const SIG_EOCD = 0x06054b50;
const SIG_EOCD64 = 0x06064b50;
const SIG_EOCD64_LOC = 0x07064b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_LOCAL = 0x04034b50;
const MAX_ENTRIES = 1_000_000;

function fail(path: string, msg: string): never {
  throw new Error(`${path}: ${msg}`);
}

export function readAt(fd: number, path: string, position: number, length: number, what: string): Buffer {
  const buf = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const n = fs.readSync(fd, buf, done, length - done, position + done);
    if (n === 0) fail(path, `file truncated while reading ${what} (got ${done} of ${length} bytes at offset ${position})`);
    done += n;
  }
  return buf;
}

function u64(buf: Buffer, at: number, path: string, what: string): number {
  const v = buf.readBigUInt64LE(at);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail(path, `${what} ${v} is too large`);
  return Number(v);
}

/** True when the file starts with a ZIP local header (torch.save's format since PyTorch 1.6). */
export function looksLikeZip(fd: number): boolean {
  const b = Buffer.alloc(4);
  const n = fs.readSync(fd, b, 0, 4, 0);
  return n === 4 && b.readUInt32LE(0) === SIG_LOCAL;
}

/** Reads and validates the central directory of an open file. */
export function readZipDirectory(fd: number, path: string): ZipDirectory {
  const fileSize = fs.fstatSync(fd).size;
  if (fileSize < 22) fail(path, `file is ${fileSize} bytes, too small for a ZIP archive`);
  // End of central directory record: the last 22..(22 + 65535) bytes.
  const tailLen = Math.min(fileSize, 22 + 0xffff);
  const tail = readAt(fd, path, fileSize - tailLen, tailLen, 'the ZIP end record');
  let eocd = -1;
  for (let i = tailLen - 22; i >= 0; i--) {
    if (tail.readUInt32LE(i) === SIG_EOCD && i + 22 + tail.readUInt16LE(i + 20) === tailLen) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) fail(path, 'no ZIP end-of-central-directory record (truncated or not a ZIP archive)');
  const eocdAbs = fileSize - tailLen + eocd;
  let count = tail.readUInt16LE(eocd + 10);
  let cdSize = tail.readUInt32LE(eocd + 12);
  let cdOffset = tail.readUInt32LE(eocd + 16);
  if (tail.readUInt16LE(eocd + 4) !== 0 || tail.readUInt16LE(eocd + 6) !== 0) fail(path, 'multi-disk ZIP archives are not supported');
  if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
    // ZIP64: the locator sits just before the end record.
    if (eocdAbs < 20) fail(path, 'ZIP64 end-of-central-directory locator missing');
    const loc = readAt(fd, path, eocdAbs - 20, 20, 'the ZIP64 locator');
    if (loc.readUInt32LE(0) !== SIG_EOCD64_LOC) fail(path, 'ZIP64 end-of-central-directory locator missing');
    const rec64 = u64(loc, 8, path, 'ZIP64 end record offset');
    if (rec64 + 56 > eocdAbs - 20) fail(path, `ZIP64 end record offset ${rec64} lies outside the archive`);
    const r = readAt(fd, path, rec64, 56, 'the ZIP64 end record');
    if (r.readUInt32LE(0) !== SIG_EOCD64) fail(path, `no ZIP64 end record at offset ${rec64}`);
    count = u64(r, 32, path, 'ZIP64 entry count');
    cdSize = u64(r, 40, path, 'ZIP64 central directory size');
    cdOffset = u64(r, 48, path, 'ZIP64 central directory offset');
  }
  if (count > MAX_ENTRIES) fail(path, `ZIP entry count ${count} exceeds the limit ${MAX_ENTRIES}`);
  if (cdOffset > fileSize || cdSize > fileSize - cdOffset || cdOffset + cdSize > eocdAbs) {
    fail(path, `ZIP central directory [${cdOffset}, +${cdSize}) lies outside the archive (file size ${fileSize})`);
  }
  const cd = readAt(fd, path, cdOffset, cdSize, 'the ZIP central directory');
  const entries = new Map<string, ZipEntry>();
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p + 46 > cd.length) fail(path, `ZIP central directory entry ${i} runs past the directory's end`);
    if (cd.readUInt32LE(p) !== SIG_CENTRAL) fail(path, `ZIP central directory entry ${i}: bad signature`);
    const flags = cd.readUInt16LE(p + 8);
    const method = cd.readUInt16LE(p + 10);
    let csize = cd.readUInt32LE(p + 20);
    let usize = cd.readUInt32LE(p + 24);
    const nameLen = cd.readUInt16LE(p + 28);
    const extraLen = cd.readUInt16LE(p + 30);
    const commentLen = cd.readUInt16LE(p + 32);
    let localOff = cd.readUInt32LE(p + 42);
    const end = p + 46 + nameLen + extraLen + commentLen;
    if (end > cd.length) fail(path, `ZIP central directory entry ${i} runs past the directory's end`);
    const name = cd.toString('utf8', p + 46, p + 46 + nameLen);
    // ZIP64 extended information: the 64-bit values of the fields set to 0xFFFFFFFF, in this order.
    let e = p + 46 + nameLen;
    const extraEnd = e + extraLen;
    while (e + 4 <= extraEnd) {
      const id = cd.readUInt16LE(e);
      const len = cd.readUInt16LE(e + 2);
      if (e + 4 + len > extraEnd) fail(path, `ZIP entry "${name}": extra field runs past its end`);
      if (id === 0x0001) {
        let q = e + 4;
        const take = (what: string): number => {
          if (q + 8 > e + 4 + len) fail(path, `ZIP entry "${name}": ZIP64 extra field too short for ${what}`);
          const v = u64(cd, q, path, `ZIP entry "${name}" ${what}`);
          q += 8;
          return v;
        };
        if (usize === 0xffffffff) usize = take('size');
        if (csize === 0xffffffff) csize = take('compressed size');
        if (localOff === 0xffffffff) localOff = take('local header offset');
      }
      e += 4 + len;
    }
    if (entries.has(name)) fail(path, `ZIP entry "${name}" appears twice`);
    if (flags & 1) fail(path, `ZIP entry "${name}" is encrypted`);
    if (localOff + 30 > cdOffset) fail(path, `ZIP entry "${name}": local header offset ${localOff} lies outside the archive data`);
    let dataOffset = -1;
    if (method === 0) {
      if (csize !== usize) fail(path, `ZIP entry "${name}": stored entry with compressed size ${csize} != size ${usize}`);
      const lh = readAt(fd, path, localOff, 30, `the local header of "${name}"`);
      if (lh.readUInt32LE(0) !== SIG_LOCAL) fail(path, `ZIP entry "${name}": no local header at offset ${localOff}`);
      const ln = lh.readUInt16LE(26);
      const le = lh.readUInt16LE(28);
      const lname = readAt(fd, path, localOff + 30, ln, `the local name of "${name}"`).toString('utf8');
      if (lname !== name) fail(path, `ZIP entry "${name}": local header names "${lname}"`);
      dataOffset = localOff + 30 + ln + le;
      if (dataOffset > cdOffset || usize > cdOffset - dataOffset) {
        fail(path, `ZIP entry "${name}": data [${dataOffset}, +${usize}) lies outside the archive data (central directory at ${cdOffset})`);
      }
    }
    entries.set(name, { name, method, size: usize, dataOffset });
    p = end;
  }
  return { path, fileSize, entries };
}

/** The bytes of a stored entry (for small entries such as data.pkl). */
export function readStoredEntry(fd: number, dir: ZipDirectory, e: ZipEntry, maxBytes: number): Buffer {
  if (e.method !== 0) fail(dir.path, `ZIP entry "${e.name}" is compressed (method ${e.method}); only stored entries can be read`);
  if (e.size > maxBytes) fail(dir.path, `ZIP entry "${e.name}" is ${e.size} bytes, over the ${maxBytes}-byte limit`);
  return readAt(fd, dir.path, e.dataOffset, e.size, `ZIP entry "${e.name}"`);
}
