/**
 * The N-API layer: runs off the JS thread, dispose semantics, argument validation, several addon instances
 * (worker_threads). Uses synthetic random-weight BERT checkpoints, so it needs no tokenizer.
 *
 * Errors made by the addon come from Node's main realm, not jest's sandbox, so they are checked by
 * `name` and message rather than with instanceof.
 */
import * as fs from 'fs';
import * as path from 'path';
import { Worker } from 'worker_threads';

import { loadBinding, NativeBertConfig, NativeModel, NativeModelOptions } from '../src/binding';
import { readSafetensors } from '../src/io/safetensors';
import { EncoderConfig, encoderTensorSpecs } from '../src/models/hf-transformer';
import { randomF32, tinyConfig, tmpDir, writeSyntheticBert } from './helpers/synthetic-bert';

const root = tmpDir('kst-binding-');
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

async function modelOptions(name: string, cfg: EncoderConfig): Promise<NativeModelOptions> {
  const { weights } = writeSyntheticBert(path.join(root, name), cfg);
  return { path: weights, config: cfg, tensors: encoderTensorSpecs(weights, (await readSafetensors(weights)).tensors, cfg) };
}

function packed(seqs: number[][]): { ids: Int32Array; lengths: Int32Array } {
  const ids = Int32Array.from(seqs.flat());
  const lengths = Int32Array.from(seqs.map((s) => s.length));
  return { ids, lengths };
}

function randomSeqs(n: number, len: (i: number) => number, vocab: number, seed: number): number[][] {
  const r = randomF32(n * 600, seed, 1);
  let k = 0;
  return Array.from({ length: n }, (_, i) => Array.from({ length: len(i) }, () => Math.floor(Math.abs(r[k++ % r.length]) * vocab) % vocab));
}

/** Catches a synchronous throw or a rejection and returns the error (any realm). */
async function caught(fn: () => unknown): Promise<{ name: string; message: string }> {
  try {
    await fn();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected an error');
}

const cfg = tinyConfig();
let opts: NativeModelOptions;
let model: NativeModel;
const seqs = randomSeqs(5, (i) => 3 + i * 4, cfg.vocab_size, 7);

beforeAll(async () => {
  opts = await modelOptions('tiny', cfg);
  model = new (loadBinding().Model)(opts);
});
afterAll(() => model?.dispose());

describe('basic encode', () => {
  test('info() reports config, isa and threads', () => {
    const info = model.info();
    expect(info).toMatchObject({ hidden_size: 16, num_hidden_layers: 2, vocab_size: 50, hidden_act: 'gelu', path: opts.path });
    expect(['scalar', 'avx2', 'avx512']).toContain(info.isa);
    expect(info.threads).toBeGreaterThanOrEqual(1);
    expect(loadBinding().detectIsa()).toMatch(/^(scalar|avx2|avx512)$/);
  });

  test('pooled output: one row per sequence, modes concatenated in cls, max, mean order', async () => {
    const { ids, lengths } = packed(seqs);
    const tok = await model.encode(ids, lengths, { pooling: 'token_embeddings' });
    expect(tok.length).toBe(ids.length * 16);
    const all = await model.encode(ids, lengths, { pooling: ['mean', 'cls', 'max'] });
    expect(all.length).toBe(5 * 48);
    // Check against pooling computed here from the token embeddings.
    let row = 0;
    for (let b = 0; b < 5; b++) {
      const L = lengths[b];
      for (let h = 0; h < 16; h++) {
        let sum = 0;
        let mx = -Infinity;
        for (let t = 0; t < L; t++) {
          const v = tok[(row + t) * 16 + h];
          sum += v;
          mx = Math.max(mx, v);
        }
        expect(all[b * 48 + h]).toBeCloseTo(tok[row * 16 + h], 5); // cls
        expect(all[b * 48 + 16 + h]).toBeCloseTo(mx, 5); // max
        expect(all[b * 48 + 32 + h]).toBeCloseTo(sum / L, 5); // mean
      }
      row += L;
    }
  });

  test('normalize gives unit rows; batch composition does not change a row', async () => {
    const { ids, lengths } = packed(seqs);
    const out = await model.encode(ids, lengths, { pooling: ['mean'], normalize: true });
    for (let b = 0; b < 5; b++) {
      const r = out.subarray(b * 16, b * 16 + 16);
      expect(Math.hypot(...r)).toBeCloseTo(1, 5);
    }
    const one = packed([seqs[3]]);
    const alone = await model.encode(one.ids, one.lengths, { pooling: ['mean'], normalize: true });
    for (let h = 0; h < 16; h++) expect(alone[h]).toBeCloseTo(out[3 * 16 + h], 5);
  });

  test('token types change the output; all-zero token types equal the default', async () => {
    const { ids, lengths } = packed(seqs);
    const base = await model.encode(ids, lengths, { pooling: ['mean'] });
    const zeros = await model.encode(ids, lengths, { pooling: ['mean'], tokenTypes: new Int32Array(ids.length) });
    expect(Array.from(zeros)).toEqual(Array.from(base));
    const ones = await model.encode(ids, lengths, { pooling: ['mean'], tokenTypes: new Int32Array(ids.length).fill(1) });
    expect(Array.from(ones)).not.toEqual(Array.from(base));
  });

  test('empty batch resolves to an empty Float32Array', async () => {
    const out = await model.encode(new Int32Array(0), new Int32Array(0), { pooling: ['mean'] });
    expect(out).toHaveLength(0);
  });

  test('inputs are copied: mutating them after the call does not change the result', async () => {
    const { ids, lengths } = packed(seqs);
    const expected = await model.encode(ids, lengths, { pooling: ['mean'] });
    const ids2 = ids.slice();
    const p = model.encode(ids2, lengths.slice(), { pooling: ['mean'] });
    ids2.fill(0);
    expect(Array.from(await p)).toEqual(Array.from(expected));
  });

  test('many concurrent encodes on one model all resolve correctly', async () => {
    const { ids, lengths } = packed(seqs);
    const expected = Array.from(await model.encode(ids, lengths, { pooling: ['cls'] }));
    const outs = await Promise.all(Array.from({ length: 12 }, () => model.encode(ids, lengths, { pooling: ['cls'] })));
    for (const o of outs) expect(Array.from(o)).toEqual(expected);
  });
});

describe('event loop stays free', () => {
  test('a timer keeps firing while a long encode runs', async () => {
    const wide = tinyConfig({ vocab_size: 500, hidden_size: 256, num_attention_heads: 4, intermediate_size: 1024, num_hidden_layers: 4, max_position_embeddings: 512 });
    const m = new (loadBinding().Model)({ ...(await modelOptions('wide', wide)), threads: 1 });
    try {
      // Grow the batch until one encode takes a while (no time is asserted, only that ticks happened meanwhile).
      let n = 1;
      let elapsed = 0;
      let ticks = 0;
      for (;;) {
        const { ids, lengths } = packed(randomSeqs(n, () => 128, wide.vocab_size, n));
        ticks = 0;
        const timer = setInterval(() => ticks++, 2);
        const t0 = process.hrtime.bigint();
        const p = m.encode(ids, lengths, { pooling: ['mean'] });
        const out = await p;
        elapsed = Number(process.hrtime.bigint() - t0) / 1e6;
        clearInterval(timer);
        expect(out.length).toBe(n * 256);
        if (elapsed > 150 || n >= 256) break;
        n *= 2;
      }
      // A blocked loop would see at most one tick (fired after the encode); a free one sees many.
      expect(ticks).toBeGreaterThanOrEqual(Math.min(10, Math.floor(elapsed / 20)));
      console.log(`long encode: ${elapsed.toFixed(0)} ms, ${ticks} timer ticks meanwhile`);
    } finally {
      m.dispose();
    }
  });
});

describe('dispose', () => {
  test('encode / info after dispose → "model has been disposed"; dispose twice is fine', async () => {
    const m = new (loadBinding().Model)(opts);
    expect(m.disposed).toBe(false);
    m.dispose();
    expect(m.disposed).toBe(true);
    m.dispose();
    const { ids, lengths } = packed(seqs);
    const e = await caught(() => m.encode(ids, lengths, { pooling: ['mean'] }));
    expect(e.message).toBe('model has been disposed');
    expect(() => m.info()).toThrow('model has been disposed');
  });

  test('dispose while encodes are in flight: they still resolve with correct results', async () => {
    const { ids, lengths } = packed(seqs);
    const expected = Array.from(await model.encode(ids, lengths, { pooling: ['mean', 'max'] }));
    const m = new (loadBinding().Model)(opts);
    const inflight = Array.from({ length: 4 }, () => m.encode(ids, lengths, { pooling: ['mean', 'max'] }));
    m.dispose();
    const outs = await Promise.all(inflight);
    for (const o of outs) expect(Array.from(o)).toEqual(expected);
    const e = await caught(() => m.encode(ids, lengths, { pooling: ['mean'] }));
    expect(e.message).toBe('model has been disposed');
  });
});

describe('argument validation', () => {
  const { ids, lengths } = packed(seqs);

  test.each([
    ['ids as number[]', () => model.encode([1, 2] as unknown as Int32Array, lengths, { pooling: ['mean'] }), 'TypeError', /^ids must be an Int32Array/],
    ['ids as Uint32Array', () => model.encode(new Uint32Array(3) as unknown as Int32Array, lengths, { pooling: ['mean'] }), 'TypeError', /^ids must be an Int32Array/],
    ['lengths missing', () => (model.encode as (...a: unknown[]) => unknown)(ids), 'TypeError', /^lengths must be an Int32Array, got undefined/],
    ['options missing', () => (model.encode as (...a: unknown[]) => unknown)(ids, lengths), 'TypeError', /^options must be an object/],
    ['pooling missing', () => model.encode(ids, lengths, {} as never), 'TypeError', /^options\.pooling must be/],
    ['pooling unknown', () => model.encode(ids, lengths, { pooling: ['avg' as never] }), 'RangeError', /^options\.pooling\[0\] must be one of/],
    ['pooling empty', () => model.encode(ids, lengths, { pooling: [] }), 'RangeError', /^options\.pooling must name at least one mode/],
    ['pooling repeated', () => model.encode(ids, lengths, { pooling: ['mean', 'mean'] }), 'RangeError', /^options\.pooling\[1\] repeats/],
    ['pooling wrong string', () => model.encode(ids, lengths, { pooling: 'mean' as never }), 'RangeError', /^options\.pooling/],
    ['normalize not boolean', () => model.encode(ids, lengths, { pooling: ['mean'], normalize: 1 as never }), 'TypeError', /^options\.normalize must be a boolean/],
    ['tokenTypes wrong type', () => model.encode(ids, lengths, { pooling: ['mean'], tokenTypes: [0] as never }), 'TypeError', /^options\.tokenTypes must be an Int32Array/],
    ['tokenTypes wrong length', () => model.encode(ids, lengths, { pooling: ['mean'], tokenTypes: new Int32Array(2) }), 'RangeError', /^options\.tokenTypes has 2 entries but ids has/],
    ['tokenTypes out of range', () => model.encode(ids, lengths, { pooling: ['mean'], tokenTypes: new Int32Array(ids.length).fill(2) }), 'RangeError', /^options\.tokenTypes\[0\] = 2 is out of range \[0, 2\)/],
    ['id too large', () => model.encode(Int32Array.from([2, 50, 3]), Int32Array.from([3]), { pooling: ['mean'] }), 'RangeError', /^ids\[1\] = 50 is out of range \[0, 50\)/],
    ['negative id', () => model.encode(Int32Array.from([2, -1, 3]), Int32Array.from([3]), { pooling: ['mean'] }), 'RangeError', /^ids\[1\] = -1 is out of range/],
    ['lengths sum too small', () => model.encode(Int32Array.from([2, 5, 3]), Int32Array.from([2]), { pooling: ['mean'] }), 'RangeError', /^lengths sum to 2 but ids has 3 entries/],
    ['lengths sum too large', () => model.encode(Int32Array.from([2, 5, 3]), Int32Array.from([2, 2]), { pooling: ['mean'] }), 'RangeError', /^lengths sum to 4 but ids has 3 entries/],
    ['zero length', () => model.encode(Int32Array.from([2, 5, 3]), Int32Array.from([3, 0]), { pooling: ['mean'] }), 'RangeError', /^lengths\[1\] = 0 must be in \[1, 64\]/],
    ['length over max_position_embeddings', () => model.encode(new Int32Array(65), Int32Array.from([65]), { pooling: ['mean'] }), 'RangeError', /^lengths\[0\] = 65 must be in \[1, 64\]/],
  ])('encode: %s', async (_name, fn, errName, re) => {
    const e = await caught(fn);
    expect(e.name).toBe(errName);
    expect(e.message).toMatch(re);
  });

  const Model = () => loadBinding().Model;
  const withConfig = (over: Record<string, unknown>) => ({ ...opts, config: { ...opts.config, ...over } as NativeBertConfig });

  test.each([
    ['no options', () => new (Model() as unknown as new () => unknown)(), 'TypeError', /^options must be an object, got undefined/],
    ['path not a string', () => new (Model())({ ...opts, path: 3 as never }), 'TypeError', /^options\.path must be a string/],
    ['config missing', () => new (Model())({ ...opts, config: undefined as never }), 'TypeError', /^options\.config must be an object/],
    ['hidden_size missing', () => new (Model())(withConfig({ hidden_size: undefined })), 'TypeError', /^config\.hidden_size must be an integer/],
    ['hidden_size fractional', () => new (Model())(withConfig({ hidden_size: 16.5 })), 'TypeError', /^config\.hidden_size must be an integer/],
    ['hidden_size zero', () => new (Model())(withConfig({ hidden_size: 0 })), 'RangeError', /^config\.hidden_size must be in \[1,/],
    ['heads do not divide hidden', () => new (Model())(withConfig({ num_attention_heads: 3 })), 'RangeError', /^config\.hidden_size \(16\) must be a multiple/],
    ['eps negative', () => new (Model())(withConfig({ layer_norm_eps: -1 })), 'RangeError', /^config\.layer_norm_eps/],
    ['bad activation', () => new (Model())(withConfig({ hidden_act: 'relu' })), 'RangeError', /^config\.hidden_act must be 'gelu' or 'gelu_new', got 'relu'/],
    ['tensors not an array', () => new (Model())({ ...opts, tensors: {} as never }), 'TypeError', /^tensors must be an array/],
    ['tensor dtype unknown', () => new (Model())({ ...opts, tensors: opts.tensors.map((t, i) => (i === 2 ? { ...t, dtype: 'F64' as never } : t)) }), 'RangeError', /^tensors\[2\] \("embeddings\.token_type_embeddings\.weight"\)\.dtype must be 'F32', 'F16' or 'BF16'/],
    ['tensor offset negative', () => new (Model())({ ...opts, tensors: opts.tensors.map((t, i) => (i === 1 ? { ...t, offset: -8 } : t)) }), 'RangeError', /^tensors\[1\] .*\.offset must be a non-negative/],
    ['tensor offset string', () => new (Model())({ ...opts, tensors: opts.tensors.map((t, i) => (i === 1 ? { ...t, offset: '8' as never } : t)) }), 'TypeError', /^tensors\[1\] .*\.offset must be a number or bigint/],
    ['tensor shape not array', () => new (Model())({ ...opts, tensors: opts.tensors.map((t, i) => (i === 0 ? { ...t, shape: 5 as never } : t)) }), 'TypeError', /^tensors\[0\] .*\.shape must be an array/],
    ['tensor negative dim', () => new (Model())({ ...opts, tensors: opts.tensors.map((t, i) => (i === 0 ? { ...t, shape: [-1, 16] } : t)) }), 'RangeError', /^tensors\[0\] .*\.shape\[0\] must be in/],
    ['threads negative', () => new (Model())({ ...opts, threads: -1 }), 'RangeError', /^options\.threads must be in \[0, 1024\]/],
    ['isa not a string', () => new (Model())({ ...opts, isa: 2 as never }), 'TypeError', /^options\.isa must be a string/],
    ['isa unknown', () => new (Model())({ ...opts, isa: 'neon' }), 'Error', /neon/],
  ])('constructor: %s', async (_name, fn, errName, re) => {
    const e = await caught(fn);
    expect(e.name).toBe(errName);
    expect(e.message).toMatch(re);
  });

  test('calling Model without new throws', () => {
    expect(() => (loadBinding().Model as unknown as () => unknown)()).toThrow();
  });

  test('offset and nbytes as bigint are accepted; isa scalar is honoured', () => {
    const m = new (loadBinding().Model)({
      ...opts,
      isa: 'scalar',
      tensors: opts.tensors.map((t) => ({ ...t, offset: BigInt(t.offset), nbytes: BigInt(t.nbytes) })),
    });
    expect(m.info().isa).toBe('scalar');
    m.dispose();
  });
});

describe('several addon instances', () => {
  test('two worker_threads load the addon and encode at the same time as the main thread', async () => {
    const addon = (require('node-gyp-build') as { path(d: string): string }).path(path.resolve(__dirname, '..'));
    const { ids, lengths } = packed(seqs);
    const expected = Array.from(await model.encode(ids, lengths, { pooling: ['mean'] }));
    const src = `
      const { parentPort, workerData } = require('worker_threads');
      const b = require(workerData.addon);
      const m = new b.Model(workerData.opts);
      m.encode(Int32Array.from(workerData.ids), Int32Array.from(workerData.lengths), { pooling: ['mean'] })
        .then((o) => { m.dispose(); parentPort.postMessage(Array.from(o)); })
        .catch((e) => parentPort.postMessage({ error: String(e) }));
    `;
    const plainOpts = { ...opts, tensors: opts.tensors.map((t) => ({ ...t })) };
    const run = () =>
      new Promise<unknown>((resolve, reject) => {
        const w = new Worker(src, { eval: true, workerData: { addon, opts: plainOpts, ids: Array.from(ids), lengths: Array.from(lengths) } });
        w.once('message', (msg) => {
          resolve(msg);
          void w.terminate();
        });
        w.once('error', reject);
      });
    const [a, b, c] = await Promise.all([run(), run(), model.encode(ids, lengths, { pooling: ['mean'] })]);
    expect(a).toEqual(expected);
    expect(b).toEqual(expected);
    expect(Array.from(c)).toEqual(expected);
  });
});

describe('loading the addon', () => {
  test('a missing binary gives one error listing platform, what was tried and the fixes', () => {
    const empty = tmpDir('kst-nobuild-');
    const saved = process.env.KO_SENTENCE_TRANSFORMERS_PREBUILD;
    process.env.KO_SENTENCE_TRANSFORMERS_PREBUILD = empty;
    try {
      jest.isolateModules(() => {
        // eslint-disable-next-line @typescript-eslint/no-var-requires
        const fresh = require('../src/binding') as typeof import('../src/binding');
        let msg = '';
        try {
          fresh.loadBinding();
        } catch (e) {
          msg = (e as Error).message;
        }
        expect(msg).toContain('could not load the native addon');
        expect(msg).toContain(`platform=${process.platform} arch=${process.arch}`);
        expect(msg).toContain(`abi=${process.versions.modules}`);
        expect(msg).toContain('tried:');
        expect(msg).toContain('npm run build:native');
        expect(msg).toMatch(/cmake.*C\+\+17/);
      });
    } finally {
      if (saved === undefined) delete process.env.KO_SENTENCE_TRANSFORMERS_PREBUILD;
      else process.env.KO_SENTENCE_TRANSFORMERS_PREBUILD = saved;
      fs.rmSync(empty, { recursive: true, force: true });
    }
  });

  test('the package root is found by walking up from src/', () => {
    const { findPackageRoot } = require('../src/binding') as typeof import('../src/binding');
    expect(findPackageRoot()).toBe(path.resolve(__dirname, '..'));
    expect(() => findPackageRoot('/')).toThrow(/cannot find the ko-sentence-transformers package root/);
  });
});
