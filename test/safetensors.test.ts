/**
 * safetensors header validation (DESIGN rule 7): every malformed file gives an Error naming the file and
 * the field/tensor, never a crash. The last block hands inconsistent tensor specs straight to the native core.
 */
import * as fs from 'fs';
import * as path from 'path';

import { loadBinding, NativeTensorSpec } from '../src/binding';
import { MAX_HEADER_BYTES, readSafetensors, writeSafetensors } from '../src/io/safetensors';
import { encoderTensorSpecs } from '../src/models/hf-transformer';
import { tinyConfig, tmpDir, writeSyntheticBert } from './helpers/synthetic-bert';

const dir = tmpDir('kst-st-');
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

let n = 0;
function file(): string {
  return path.join(dir, `t${n++}.safetensors`);
}

const f32 = (k: number) => new Float32Array(k).map((_, i) => i * 0.5);

/** A valid two-tensor file as raw bytes: [prefix | header | data]. */
function goodBytes(): { bytes: Buffer; headerLen: number } {
  const p = file();
  writeSafetensors(p, { a: { dtype: 'F32', shape: [2, 3], data: f32(6) }, b: { dtype: 'F16', shape: [4], data: new Uint8Array(8) } });
  const bytes = fs.readFileSync(p);
  return { bytes, headerLen: Number(bytes.readBigUInt64LE(0)) };
}

async function expectBad(p: string, ...parts: (string | RegExp)[]): Promise<void> {
  let err: Error | undefined;
  try {
    await readSafetensors(p);
  } catch (e) {
    err = e as Error;
  }
  expect(err).toBeInstanceOf(Error);
  expect(err!.message.startsWith(p)).toBe(true);
  for (const s of parts) expect(err!.message).toMatch(s);
}

describe('readSafetensors: valid files', () => {
  test('reads tensors with absolute offsets, metadata and dtypes', async () => {
    const p = file();
    writeSafetensors(
      p,
      {
        x: { dtype: 'F32', shape: [2, 2], data: f32(4) },
        y: { dtype: 'BF16', shape: [3], data: new Uint8Array(6) },
        z: { dtype: 'F32', shape: [0], data: new Float32Array(0) },
      },
      { metadata: { format: 'pt' } },
    );
    const st = await readSafetensors(p);
    expect(st.metadata).toEqual({ format: 'pt' });
    expect([...st.tensors.keys()].sort()).toEqual(['x', 'y', 'z']);
    const x = st.tensors.get('x')!;
    expect(x).toEqual({ dtype: 'F32', shape: [2, 2], offset: st.dataStart, nbytes: 16 });
    const buf = fs.readFileSync(p);
    expect(Array.from(new Float32Array(buf.buffer.slice(buf.byteOffset + x.offset, buf.byteOffset + x.offset + 16)))).toEqual([0, 0.5, 1, 1.5]);
    expect(st.tensors.get('y')).toEqual({ dtype: 'BF16', shape: [3], offset: st.dataStart + 16, nbytes: 6 });
  });

  test('reads only the header: a sparse 3 GiB file (too big to read whole) is accepted', async () => {
    const p = file();
    const n = 3 * 2 ** 30;
    const header = Buffer.from(JSON.stringify({ big: { dtype: 'F32', shape: [n / 4], data_offsets: [0, n] } }));
    const prefix = Buffer.alloc(8);
    prefix.writeBigUInt64LE(BigInt(header.length));
    fs.writeFileSync(p, Buffer.concat([prefix, header]));
    fs.truncateSync(p, 8 + header.length + n);
    try {
      const st = await readSafetensors(p);
      expect(st.tensors.get('big')).toEqual({ dtype: 'F32', shape: [n / 4], offset: 8 + header.length, nbytes: n });
    } finally {
      fs.rmSync(p);
    }
  });
});

describe('readSafetensors: malformed files', () => {
  test('file shorter than the length prefix', async () => {
    const p = file();
    fs.writeFileSync(p, Buffer.from([1, 2, 3]));
    await expectBad(p, /too small/);
  });

  test('truncated inside the header', async () => {
    const { bytes, headerLen } = goodBytes();
    const p = file();
    fs.writeFileSync(p, bytes.subarray(0, 8 + Math.floor(headerLen / 2)));
    await expectBad(p, /header length prefix/, /beyond the end of the file/);
  });

  test('truncated inside the data', async () => {
    const { bytes } = goodBytes();
    const p = file();
    fs.writeFileSync(p, bytes.subarray(0, bytes.length - 3));
    await expectBad(p, /tensor "b"/, /truncated|beyond/);
  });

  test('length prefix over 100 MB', async () => {
    const p = file();
    writeSafetensors(p, { a: { dtype: 'F32', shape: [1], data: f32(1) } }, { headerLengthOverride: BigInt(MAX_HEADER_BYTES + 1) });
    await expectBad(p, /header length prefix/, /limit/);
  });

  test('length prefix near 2^64', async () => {
    const p = file();
    writeSafetensors(p, { a: { dtype: 'F32', shape: [1], data: f32(1) } }, { headerLengthOverride: 0xffffffffffffffffn });
    await expectBad(p, /header length prefix/);
  });

  test('length prefix beyond the file', async () => {
    const p = file();
    writeSafetensors(p, { a: { dtype: 'F32', shape: [1], data: f32(1) } }, { headerLengthOverride: 5000n });
    await expectBad(p, /header length prefix 5000/, /beyond the end of the file/);
  });

  test('header is not UTF-8', async () => {
    const p = file();
    writeSafetensors(p, {}, { rawHeader: Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]) });
    await expectBad(p, /UTF-8/);
  });

  test('header is not JSON', async () => {
    const p = file();
    writeSafetensors(p, {}, { rawHeader: Buffer.from('{"a": [1, 2', 'utf8') });
    await expectBad(p, /not valid JSON/);
  });

  test.each([['[1,2,3]'], ['"hello"'], ['null'], ['42']])('header %s is not an object', async (h) => {
    const p = file();
    writeSafetensors(p, {}, { rawHeader: Buffer.from(h.padEnd(8, ' '), 'utf8') });
    await expectBad(p, /not a JSON object/);
  });

  test('__metadata__ with a non-string value', async () => {
    const p = file();
    writeSafetensors(p, { a: { dtype: 'F32', shape: [1], data: f32(1) } }, { rawHeader: Buffer.from('{"__metadata__":{"k":1},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}') });
    await expectBad(p, /__metadata__\.k/);
  });

  test('overlapping offsets', async () => {
    const p = file();
    writeSafetensors(p, {
      a: { dtype: 'F32', shape: [2], data: f32(2), dataOffsets: [0, 8] },
      b: { dtype: 'F32', shape: [2], data: f32(1), dataOffsets: [4, 12] },
    });
    await expectBad(p, /tensor "b"/, /overlap/);
  });

  test('gap between tensors', async () => {
    const p = file();
    writeSafetensors(p, {
      a: { dtype: 'F32', shape: [1], data: f32(2), dataOffsets: [0, 4] },
      b: { dtype: 'F32', shape: [1], data: f32(1), dataOffsets: [8, 12] },
    });
    await expectBad(p, /tensor "b"/, /gap/);
  });

  test('data does not end at EOF', async () => {
    const p = file();
    writeSafetensors(p, { a: { dtype: 'F32', shape: [2], data: f32(2) } }, { trailing: new Uint8Array(4) });
    await expectBad(p, /does not end at the end of the file/);
  });

  test('shape x dtype does not match the span', async () => {
    const p = file();
    writeSafetensors(p, { w: { dtype: 'F32', shape: [3], data: f32(2) } });
    await expectBad(p, /tensor "w"/, /\[3\] x F32 is 12 bytes but data_offsets span 8/);
  });

  test('unsupported dtype', async () => {
    const p = file();
    writeSafetensors(p, { ids: { dtype: 'I64', shape: [1], data: new Uint8Array(8) } });
    await expectBad(p, /tensor "ids"/, /unsupported dtype "I64"/);
  });

  test.each([
    ['negative dim', '{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}', /tensor "a": shape/],
    ['fractional dim', '{"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}', /tensor "a": shape/],
    ['string dim', '{"a":{"dtype":"F32","shape":["1"],"data_offsets":[0,4]}}', /tensor "a": shape/],
    ['no shape', '{"a":{"dtype":"F32","data_offsets":[0,4]}}', /tensor "a": shape must be an array/],
    ['offsets not a pair', '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0]}}', /tensor "a": data_offsets/],
    ['end < begin', '{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}', /tensor "a": data_offsets/],
    ['no dtype', '{"a":{"shape":[1],"data_offsets":[0,4]}}', /tensor "a": dtype/],
    ['entry not an object', '{"a":5}', /tensor "a": entry must be an object/],
  ])('%s', async (_name, header, re) => {
    const p = file();
    writeSafetensors(p, {}, { rawHeader: Buffer.from(header, 'utf8'), trailing: new Uint8Array(4) });
    await expectBad(p, re);
  });

  test('missing file', async () => {
    const p = path.join(dir, 'nope.safetensors');
    await expectBad(p, /cannot open/);
  });
});

describe('model tensors: presence and shapes', () => {
  const cfg = tinyConfig();

  test('a complete synthetic BERT passes, bert. prefix stripped', async () => {
    const { weights } = writeSyntheticBert(path.join(dir, 'ok'), cfg, (t) => {
      const out: typeof t = {};
      for (const [k, v] of Object.entries(t)) out[`bert.${k}`] = v;
      out['pooler.dense.weight'] = { dtype: 'F32', shape: [16, 16], data: new Float32Array(256) };
      return out;
    });
    const specs = encoderTensorSpecs(weights, (await readSafetensors(weights)).tensors, cfg);
    expect(specs.map((s) => s.name)).toContain('encoder.layer.1.output.LayerNorm.bias');
    expect(specs.every((s) => !s.name.startsWith('bert.'))).toBe(true);
  });

  test('wrong shape names the tensor and the expected shape', async () => {
    const { weights } = writeSyntheticBert(path.join(dir, 'shape'), cfg, (t) => {
      t['encoder.layer.1.intermediate.dense.weight'] = { dtype: 'F32', shape: [16, 24], data: new Float32Array(16 * 24) };
    });
    const st = await readSafetensors(weights);
    expect(() => encoderTensorSpecs(st.path, st.tensors, cfg)).toThrow(weights);
    expect(() => encoderTensorSpecs(st.path, st.tensors, cfg)).toThrow('tensor "encoder.layer.1.intermediate.dense.weight": expected shape [24, 16], got [16, 24]');
  });

  test('missing tensor names the tensor', async () => {
    const { weights } = writeSyntheticBert(path.join(dir, 'missing'), cfg, (t) => {
      delete t['encoder.layer.0.attention.self.key.bias'];
    });
    const st = await readSafetensors(weights);
    expect(() => encoderTensorSpecs(st.path, st.tensors, cfg)).toThrow(/missing tensor "encoder\.layer\.0\.attention\.self\.key\.bias" \(expected shape \[16\]\)/);
  });
});

// Errors made by the addon come from Node's main realm, not jest's sandbox, so `toThrow(Error)` (instanceof)
// cannot be used for them: the tests match the message instead.
describe('native core re-checks tensor specs', () => {
  const cfg = tinyConfig();
  let weights: string;
  let specs: NativeTensorSpec[];
  beforeAll(async () => {
    weights = writeSyntheticBert(path.join(dir, 'native'), cfg).weights;
    specs = encoderTensorSpecs(weights, (await readSafetensors(weights)).tensors, cfg);
  });

  const load = (tensors: NativeTensorSpec[]) => {
    const { Model } = loadBinding();
    return new Model({ path: weights, config: cfg, tensors });
  };

  test('consistent specs load', () => {
    const m = load(specs);
    expect(m.info().hidden_size).toBe(16);
    m.dispose();
  });

  test('span beyond the end of the file → JS Error', () => {
    const size = fs.statSync(weights).size;
    const bad = specs.map((s) => (s.name === 'embeddings.LayerNorm.bias' ? { ...s, offset: size - 8 } : s));
    expect(() => load(bad)).toThrow(/embeddings\.LayerNorm\.bias.*span/);
    const big = specs.map((s) => (s.name === 'embeddings.LayerNorm.bias' ? { ...s, offset: 2n ** 62n } : s));
    expect(() => load(big)).toThrow(/embeddings\.LayerNorm\.bias.*span/);
  });

  test('nbytes not matching shape x dtype → JS Error', () => {
    const bad = specs.map((s) => (s.name === 'embeddings.word_embeddings.weight' ? { ...s, nbytes: Number(s.nbytes) - 4 } : s));
    expect(() => load(bad)).toThrow(/embeddings\.word_embeddings\.weight.*nbytes/);
  });

  test('shape not matching the config → JS Error', () => {
    const bad = specs.map((s) => (s.name === 'embeddings.LayerNorm.weight' ? { ...s, shape: [8], nbytes: 32 } : s));
    expect(() => load(bad)).toThrow(/embeddings\.LayerNorm\.weight.*expected shape \[16\], got \[8\]/);
  });

  test('missing tensor → JS Error', () => {
    expect(() => load(specs.filter((s) => s.name !== 'encoder.layer.0.output.dense.weight'))).toThrow(/encoder\.layer\.0\.output\.dense\.weight.*missing/);
  });

  test('file that does not exist → JS Error', () => {
    const { Model } = loadBinding();
    expect(() => new Model({ path: path.join(dir, 'absent.safetensors'), config: cfg, tensors: specs })).toThrow(/absent\.safetensors.*cannot open/);
  });
});
