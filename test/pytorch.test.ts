/**
 * pytorch_model.bin: the data-only unpickler and the zip reader. Real checkpoints come from
 * test/golden/make_golden_arch.py (torch.save of a state_dict, as transformers' save_pretrained(
 * safe_serialization=False) wrote them); hostile ones are built here byte by byte.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { convertToSafetensors, readPytorchCheckpointSync, readPytorchTensorBytes } from '../src/io/pytorch';
import { readSafetensorsSync } from '../src/io/safetensors';
import { SentenceTransformer } from '../src/sentence-transformer';

const MODELS = path.join(__dirname, 'fixtures', 'arch', 'models');
const BIN = path.join(MODELS, 'bert-wordpiece-bin', 'pytorch_model.bin');
const ST = path.join(MODELS, 'bert-wordpiece-st', 'model.safetensors');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kst-pt-'));

/** A stored-entries zip (CRCs left 0: the reader does not need them). */
function makeZip(entries: [string, Buffer][], opts: { method?: number; localOffsetDelta?: number } = {}): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let off = 0;
  for (const [name, data] of entries) {
    const n = Buffer.from(name);
    const lh = Buffer.alloc(30);
    lh.writeUInt32LE(0x04034b50, 0);
    lh.writeUInt16LE(opts.method ?? 0, 8);
    lh.writeUInt32LE(data.length, 18);
    lh.writeUInt32LE(data.length, 22);
    lh.writeUInt16LE(n.length, 26);
    const ch = Buffer.alloc(46);
    ch.writeUInt32LE(0x02014b50, 0);
    ch.writeUInt16LE(opts.method ?? 0, 10);
    ch.writeUInt32LE(data.length, 20);
    ch.writeUInt32LE(data.length, 24);
    ch.writeUInt16LE(n.length, 28);
    ch.writeUInt32LE(off + (opts.localOffsetDelta ?? 0), 42);
    locals.push(lh, n, data);
    centrals.push(ch, n);
    off += 30 + n.length + data.length;
  }
  const cd = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(off, 16);
  return Buffer.concat([...locals, cd, end]);
}

const u = (s: string): Buffer => {
  const b = Buffer.from(s, 'utf8');
  const h = Buffer.alloc(5);
  h[0] = 0x58; // BINUNICODE
  h.writeUInt32LE(b.length, 1);
  return Buffer.concat([h, b]);
};
const g = (mod: string, name: string): Buffer => Buffer.from(`c${mod}\n${name}\n`, 'latin1');
const B = (...xs: (Buffer | number[] | string)[]): Buffer =>
  Buffer.concat(xs.map((x) => (Buffer.isBuffer(x) ? x : typeof x === 'string' ? Buffer.from(x, 'latin1') : Buffer.from(x))));

/** state_dict {"w": tensor(size, stride, offset) over FloatStorage "0" of numel elements}. */
function statePickle(numel: number, size: [number, number], stride: [number, number], offset = 0): Buffer {
  return B(
    [0x80, 0x02], g('collections', 'OrderedDict'), ')R',
    u('w'), g('torch._utils', '_rebuild_tensor_v2'), '(',
    '(', u('storage'), g('torch', 'FloatStorage'), u('0'), u('cpu'), [0x4b, numel], 't', 'Q',
    [0x4b, offset], [0x4b, size[0], 0x4b, size[1], 0x86], [0x4b, stride[0], 0x4b, stride[1], 0x86], [0x89],
    g('collections', 'OrderedDict'), ')R', 't', 'R', 's', '.',
  );
}

function writeCkpt(name: string, pkl: Buffer, data: Buffer = Buffer.alloc(0), opts = {}): string {
  const f = path.join(tmp, name);
  fs.writeFileSync(f, makeZip([['archive/data.pkl', pkl], ['archive/data/0', data]], opts));
  return f;
}

const floats = (xs: number[]): Buffer => Buffer.from(new Float32Array(xs).buffer);

describe('real torch.save checkpoints', () => {
  test('every tensor equals the safetensors copy of the same weights (offsets into the file, read in place)', () => {
    const ck = readPytorchCheckpointSync(BIN);
    const st = readSafetensorsSync(ST);
    expect([...ck.tensors.keys()].sort()).toEqual([...st.tensors.keys()].sort());
    const binBytes = fs.readFileSync(BIN);
    const stBytes = fs.readFileSync(ST);
    for (const [name, t] of ck.tensors) {
      const s = st.tensors.get(name)!;
      expect(t.contiguous).toBe(true);
      expect(t.dtype).toBe(s.dtype);
      expect(t.shape).toEqual(s.shape);
      expect(binBytes.subarray(t.offset, t.offset + t.nbytes).equals(stBytes.subarray(s.offset, s.offset + s.nbytes))).toBe(true);
    }
  });

  test('convertToSafetensors writes a model.safetensors that gives the same embeddings', async () => {
    const dir = path.join(tmp, 'convert');
    fs.cpSync(path.join(MODELS, 'bert-wordpiece-bin'), dir, { recursive: true });
    const r = convertToSafetensors(dir);
    expect(r.tensors).toBe(readPytorchCheckpointSync(BIN).tensors.size);
    expect(() => convertToSafetensors(dir)).toThrow(/already exists/);
    const texts = ['한국어 모델을 공유합니다.', '그 여자가 아이를 돌본다.'];
    const a = await SentenceTransformer.load(path.join(MODELS, 'bert-wordpiece-bin'));
    fs.rmSync(path.join(dir, 'pytorch_model.bin'));
    const b = await SentenceTransformer.load(dir);
    const ea = await a.encode(texts);
    const eb = await b.encode(texts);
    expect(Array.from(eb[0])).toEqual(Array.from(ea[0]));
    expect(Array.from(eb[1])).toEqual(Array.from(ea[1]));
    a.dispose();
    b.dispose();
  });
});

describe('hand-built checkpoints', () => {
  test('a well-formed state_dict parses; a transposed (non-contiguous) tensor is gathered on request', () => {
    const f = writeCkpt('ok.bin', statePickle(6, [3, 2], [1, 3]), floats([1, 2, 3, 4, 5, 6]));
    const ck = readPytorchCheckpointSync(f);
    const t = ck.tensors.get('w')!;
    expect(t).toMatchObject({ dtype: 'F32', shape: [3, 2], stride: [1, 3], contiguous: false });
    expect(Array.from(new Float32Array(new Uint8Array(readPytorchTensorBytes(ck, 'w')).buffer))).toEqual([1, 4, 2, 5, 3, 6]);
  });

  test('storage smaller than its tensor → error naming the tensor', () => {
    const f = writeCkpt('small.bin', statePickle(4, [2, 3], [3, 1]), floats([1, 2, 3, 4]));
    expect(() => readPytorchCheckpointSync(f)).toThrow(/tensor "w": shape \[2, 3\], stride \[3, 1\] and offset 0 reach element 5 but storage "0" holds 4 elements/);
  });

  test('storage entry size disagreeing with the declared numel → error', () => {
    const f = writeCkpt('numel.bin', statePickle(6, [2, 3], [3, 1]), floats([1, 2, 3]));
    expect(() => readPytorchCheckpointSync(f)).toThrow(/declares 6 × 4 bytes but its archive entry holds 12 bytes/);
  });

  test('os.system global → refused by name, nothing executed', () => {
    const marker = path.join(tmp, 'pwned');
    const pkl = B([0x80, 0x02], g('os', 'system'), u(`touch ${marker}`), [0x85], 'R', '.');
    const f = writeCkpt('os.bin', pkl);
    expect(() => readPytorchCheckpointSync(f)).toThrow(/global "os\.system" is not allowed/);
    expect(fs.existsSync(marker)).toBe(false);
  });

  test('builtins.eval through STACK_GLOBAL (protocol 4) → refused by name', () => {
    const sb = (s: string): Buffer => B([0x8c, Buffer.byteLength(s)], s);
    const pkl = B([0x80, 0x04], sb('builtins'), sb('eval'), [0x93], sb('1+1'), [0x85], 'R', '.');
    expect(() => readPytorchCheckpointSync(writeCkpt('eval.bin', pkl))).toThrow(/global "builtins\.eval" is not allowed/);
  });

  test('REDUCE of something that is not an allowed function → error', () => {
    const notCallable = B([0x80, 0x02], u('x'), ')R', '.');
    expect(() => readPytorchCheckpointSync(writeCkpt('r1.bin', notCallable))).toThrow(/REDUCE of a non-global callable/);
    const storageCall = B([0x80, 0x02], g('torch', 'FloatStorage'), ')R', '.');
    expect(() => readPytorchCheckpointSync(writeCkpt('r2.bin', storageCall))).toThrow(/calling torch\.FloatStorage is not allowed/);
    const inst = B([0x80, 0x02], '(', 'i', 'os\nsystem\n', '.');
    expect(() => readPytorchCheckpointSync(writeCkpt('r3.bin', inst))).toThrow(/opcode 0x69 .* is not allowed/);
  });

  test('truncated pickle, truncated zip, offsets outside the file, compressed entries, legacy format', () => {
    expect(() => readPytorchCheckpointSync(writeCkpt('tp.bin', statePickle(6, [2, 3], [3, 1]).subarray(0, 40), floats([1, 2, 3, 4, 5, 6])))).toThrow(
      /data\.pkl: (pickle truncated|stack underflow|MARK expected|GLOBAL: unterminated name)/,
    );
    const whole = fs.readFileSync(BIN);
    const cut = path.join(tmp, 'cut.bin');
    fs.writeFileSync(cut, whole.subarray(0, whole.length >> 1));
    expect(() => readPytorchCheckpointSync(cut)).toThrow(/no ZIP end-of-central-directory record/);
    const outside = path.join(tmp, 'outside.bin');
    fs.writeFileSync(outside, makeZip([['archive/data.pkl', statePickle(6, [2, 3], [3, 1])], ['archive/data/0', floats([1, 2, 3, 4, 5, 6])]], { localOffsetDelta: 1 << 30 }));
    expect(() => readPytorchCheckpointSync(outside)).toThrow(/local header offset \d+ lies outside the archive data/);
    const comp = path.join(tmp, 'comp.bin');
    fs.writeFileSync(comp, makeZip([['archive/data.pkl', statePickle(6, [2, 3], [3, 1])]], { method: 8 }));
    expect(() => readPytorchCheckpointSync(comp)).toThrow(/"archive\/data\.pkl" is compressed \(method 8\)/);
    const legacy = path.join(tmp, 'legacy.bin');
    fs.writeFileSync(legacy, B([0x80, 0x02, 0x8a, 0x0a], Buffer.alloc(20)));
    expect(() => readPytorchCheckpointSync(legacy)).toThrow(/legacy \(pre-PyTorch 1\.6, non-zip\) checkpoint format is not supported/);
    // the central directory's size field pointing past the end of the file
    const bad = Buffer.from(fs.readFileSync(BIN));
    const eocd = bad.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
    bad.writeUInt32LE(0xfffffff0, eocd + 12);
    const badCd = path.join(tmp, 'badcd.bin');
    fs.writeFileSync(badCd, bad);
    expect(() => readPytorchCheckpointSync(badCd)).toThrow(/central directory|ZIP64/);
  });

  test('a non-contiguous weight makes the model load fail with the convert hint', async () => {
    const dir = path.join(tmp, 'noncontig');
    fs.cpSync(path.join(MODELS, 'bert-wordpiece-bin'), dir, { recursive: true });
    // (patching strides inside a real pickle is awkward: mark one mapped tensor non-contiguous instead)
    const { encoderTensorSpecs, readEncoderConfig } = await import('../src/models/hf-transformer');
    const cfg = readEncoderConfig(path.join(dir, 'config.json'));
    const ck = readPytorchCheckpointSync(path.join(dir, 'pytorch_model.bin'));
    const t = ck.tensors.get('embeddings.word_embeddings.weight')!;
    ck.tensors.set('embeddings.word_embeddings.weight', { ...t, contiguous: false });
    expect(() => encoderTensorSpecs(ck.path, ck.tensors, cfg)).toThrow(/is not contiguous .* convertToSafetensors/);
  });
});
