/**
 * Public API: util (cosSim, dotScore, semanticSearch) against hand-checkable vectors, Pooling config parsing,
 * modules.json layouts, encode() shapes and options, config.json validation.
 */
import * as fs from 'fs';
import * as path from 'path';

import * as api from '../src/index';
import { cosSim, dotScore, semanticSearch } from '../src/util';
import { Pooling } from '../src/models/pooling';
import { KoBertTransformer } from '../src/models/transformer';
import { SentenceTransformer, moduleKind } from '../src/sentence-transformer';
import { tmpDir } from './helpers/synthetic-bert';

const FIXTURE = path.resolve(__dirname, 'fixtures/kobert-tiny');
const WORD = path.join(FIXTURE, '0_KoBertTransformer');
const root = tmpDir('kst-api-');
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

const SENTENCES = ['한 남자가 음식을 먹는다.', '한 남자가 빵 한 조각을 먹는다.', '그 여자가 아이를 돌본다.', '', '원숭이 한 마리가 드럼을 연주한다.'];

function norm(v: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i] * v[i];
  return Math.sqrt(s);
}

function writeJson(file: string, obj: unknown): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, JSON.stringify(obj, null, 2));
}

describe('util', () => {
  const a = [3, 4];
  const b = [4, 3];
  const c = [-3, -4];
  const z = [0, 0];

  test('cosSim: two vectors → 1×1 matrix; values from first principles', () => {
    // cos(a, b) = (3·4 + 4·3) / (5 · 5) = 24/25
    expect(cosSim(a, b)).toEqual([[24 / 25]]);
    expect(cosSim(a, c)[0][0]).toBeCloseTo(-1, 12);
    expect(cosSim(new Float32Array(a), new Float32Array(a))[0][0]).toBeCloseTo(1, 7);
  });

  test('cosSim: lists → n×m matrix; zero vector gives 0, not NaN', () => {
    const m = cosSim([a, b, z], [a, c]);
    expect(m).toHaveLength(3);
    expect(m[0]).toEqual([1, -1]);
    expect(m[1][0]).toBeCloseTo(24 / 25, 12);
    expect(m[1][1]).toBeCloseTo(-24 / 25, 12);
    expect(m[2]).toEqual([0, 0]);
    expect(cosSim([a], b)).toEqual([[24 / 25]]);
  });

  test('dotScore', () => {
    expect(dotScore([a, b], [a, b, c])).toEqual([
      [25, 24, -25],
      [24, 25, -24],
    ]);
  });

  test('dimension mismatch is an error', () => {
    expect(() => cosSim([1, 2, 3], [1, 2])).toThrow(/dimension 2, expected 3/);
    expect(() => cosSim('x' as never, [1])).toThrow(TypeError);
  });

  test('semanticSearch: topK hits per query, best first, any chunking', () => {
    const corpus = [
      [1, 0, 0],
      [0, 1, 0],
      [1, 1, 0],
      [0, 0, 1],
      [1, 1, 1],
    ];
    const queries = [
      [1, 0, 0],
      [0, 1, 1],
    ];
    const hits = semanticSearch(queries, corpus, { topK: 3 });
    const s2 = 1 / Math.SQRT2;
    const s3 = 1 / Math.sqrt(3);
    expect(hits[0].map((h) => h.corpusId)).toEqual([0, 2, 4]);
    expect(hits[0][0].score).toBeCloseTo(1, 12);
    expect(hits[0][1].score).toBeCloseTo(s2, 12);
    expect(hits[0][2].score).toBeCloseTo(s3, 12);
    // query 2 = (0,1,1)/√2: corpus 4 → 2/√6; corpus 1 and 3 → 1/√2 (tie: lower id first); corpus 2 → 1/2.
    expect(hits[1].map((h) => h.corpusId)).toEqual([4, 1, 3]);
    expect(hits[1][0].score).toBeCloseTo(2 / Math.sqrt(6), 12);
    const chunked = semanticSearch(queries, corpus, { topK: 3, queryChunkSize: 1, corpusChunkSize: 2 });
    expect(chunked).toEqual(hits);
    expect(semanticSearch(queries[0], corpus, { topK: 100 })[0]).toHaveLength(5);
    expect(semanticSearch(queries, corpus)[0]).toHaveLength(5);
    expect(() => semanticSearch(queries, corpus, { topK: 0 })).toThrow(/topK/);
    expect(semanticSearch(queries, [], { topK: 2 })).toEqual([[], []]);
  });

  test('index exports the public API', () => {
    for (const k of ['SentenceTransformer', 'KoBertTransformer', 'Pooling', 'Normalize', 'KoBertTokenizer', 'readSafetensors', 'detectIsa', 'util']) {
      expect(api).toHaveProperty(k);
    }
    expect(api.util.cosSim).toBe(cosSim);
    expect(api.util.semanticSearch).toBe(semanticSearch);
  });
});

describe('Pooling configuration', () => {
  const f = '/m/1_Pooling/config.json';

  test('legacy boolean form', () => {
    const p = Pooling.fromConfig(f, {
      word_embedding_dimension: 64,
      pooling_mode_cls_token: false,
      pooling_mode_mean_tokens: true,
      pooling_mode_max_tokens: false,
      pooling_mode_mean_sqrt_len_tokens: false,
    });
    expect(p.poolingModes).toEqual(['mean']);
    expect(p.getSentenceEmbeddingDimension()).toBe(64);
    const q = Pooling.fromConfig(f, { word_embedding_dimension: 8, pooling_mode_cls_token: true, pooling_mode_max_tokens: true, pooling_mode_mean_tokens: true });
    expect(q.poolingModes).toEqual(['cls', 'max', 'mean']);
    expect(q.getSentenceEmbeddingDimension()).toBe(24);
    expect(q.blockOrder()).toBeNull();
    // every flag false → mean (as sentence-transformers does)
    expect(Pooling.fromConfig(f, { word_embedding_dimension: 8, pooling_mode_mean_tokens: false }).poolingModes).toEqual(['mean']);
  });

  test('pooling_mode string / list form (sentence-transformers 6)', () => {
    expect(Pooling.fromConfig(f, { embedding_dimension: 64, pooling_mode: 'cls', include_prompt: true }).poolingModes).toEqual(['cls']);
    expect(Pooling.fromConfig(f, { embedding_dimension: 64, pooling_mode: 'mean_sqrt_len_tokens' }).poolingModes).toEqual(['mean_sqrt_len']);
    const p = Pooling.fromConfig(f, { embedding_dimension: 4, pooling_mode: ['mean', 'cls'] });
    expect(p.poolingModes).toEqual(['mean', 'cls']);
    expect(p.modes()).toEqual(['cls', 'mean']);
    expect(p.blockOrder()).toEqual([1, 0]);
    expect(p.getConfigDict()).toEqual({ embedding_dimension: 4, pooling_mode: ['mean', 'cls'], include_prompt: true });
  });

  test('unsupported and malformed configs name the file and field', () => {
    // weightedmean / lasttoken are supported since the architectures issue (pooled in JS)
    expect(Pooling.fromConfig(f, { embedding_dimension: 8, pooling_mode: 'weightedmean' }).poolingModes).toEqual(['weightedmean']);
    expect(Pooling.fromConfig(f, { embedding_dimension: 8, pooling_mode: 'lasttoken' }).poolingModes).toEqual(['lasttoken']);
    expect(Pooling.fromConfig(f, { word_embedding_dimension: 8, pooling_mode_weightedmean_tokens: true }).poolingModes).toEqual(['weightedmean']);
    expect(() => Pooling.fromConfig(f, { embedding_dimension: 8, pooling_mode: 'median' })).toThrow(/unknown pooling mode "median"/);
    expect(() => Pooling.fromConfig(f, { pooling_mode: 'mean' })).toThrow(`${f}: field "word_embedding_dimension" must be an integer`);
    expect(() => Pooling.fromConfig(f, { embedding_dimension: 8, pooling_mode: 3 })).toThrow(/field "pooling_mode" must be/);
    expect(() => Pooling.fromConfig(f, { word_embedding_dimension: 8, pooling_mode_cls_token: 'yes' })).toThrow(/"pooling_mode_cls_token" must be a boolean/);
  });

  test('constructor like sentence-transformers', () => {
    expect(new Pooling(16).poolingModes).toEqual(['mean']);
    expect(new Pooling(16, { mode: 'max' }).poolingModes).toEqual(['max']);
    expect(new Pooling(16, { poolingModeClsToken: true, poolingModeMeanTokens: false }).poolingModes).toEqual(['cls']);
    expect(() => new Pooling(0)).toThrow(/wordEmbeddingDimension/);
    expect(new Pooling(16, { mode: 'weightedmean' }).needsTokenEmbeddings()).toBe(true);
    expect(() => new Pooling(16, { mode: 'median' as never })).toThrow(/unknown pooling mode/);
  });

  test('module types from modules.json', () => {
    expect(moduleKind('sentence_transformers.models.Transformer')).toBe('transformer');
    expect(moduleKind('sentence_transformers.base.modules.transformer.Transformer')).toBe('transformer');
    expect(moduleKind('ko_sentence_transformers.models.KoBertTransformer')).toBe('transformer');
    expect(moduleKind('sentence_transformers.sentence_transformer.modules.pooling.Pooling')).toBe('pooling');
    expect(moduleKind('sentence_transformers.models.Normalize')).toBe('normalize');
    expect(moduleKind('sentence_transformers.models.Dense')).toBe('dense');
    expect(moduleKind('sentence_transformers.models.LSTM')).toBeUndefined();
    expect(moduleKind('evil.Pooling')).toBeUndefined();
  });
});

describe('SentenceTransformer.load layouts', () => {
  let reference: Float32Array[];
  beforeAll(async () => {
    const m = await SentenceTransformer.load(FIXTURE);
    reference = await m.encode(SENTENCES);
    m.dispose();
  });

  function copyWord(dst: string): void {
    fs.cpSync(WORD, dst, { recursive: true });
  }

  test('Transformer at the root (path ""), legacy Pooling config, Normalize', async () => {
    const dir = path.join(root, 'root-layout');
    copyWord(dir);
    writeJson(path.join(dir, 'modules.json'), [
      { idx: 0, name: '0', path: '', type: 'sentence_transformers.models.Transformer' },
      { idx: 1, name: '1', path: '1_Pooling', type: 'sentence_transformers.models.Pooling' },
      { idx: 2, name: '2', path: '2_Normalize', type: 'sentence_transformers.models.Normalize' },
    ]);
    writeJson(path.join(dir, '1_Pooling/config.json'), { word_embedding_dimension: 64, pooling_mode_mean_tokens: true });
    const m = await SentenceTransformer.load(dir);
    try {
      const out = await m.encode(SENTENCES);
      out.forEach((v, i) => {
        expect(norm(v)).toBeCloseTo(1, 5);
        const r = reference[i];
        const n = norm(r);
        for (let k = 0; k < 64; k++) expect(v[k]).toBeCloseTo(r[k] / n, 5);
      });
    } finally {
      m.dispose();
    }
  });

  test('0_Transformer folder', async () => {
    const dir = path.join(root, 'sub-layout');
    copyWord(path.join(dir, '0_Transformer'));
    writeJson(path.join(dir, 'modules.json'), [
      { idx: 0, name: '0', path: '0_Transformer', type: 'sentence_transformers.models.Transformer' },
      { idx: 1, name: '1', path: '1_Pooling', type: 'sentence_transformers.models.Pooling' },
    ]);
    writeJson(path.join(dir, '1_Pooling/config.json'), { embedding_dimension: 64, pooling_mode: ['mean', 'cls'] });
    const m = await SentenceTransformer.load(dir);
    try {
      expect(m.getSentenceEmbeddingDimension()).toBe(128);
      const out = await m.encode(SENTENCES);
      const cls = await new SentenceTransformer({ modules: [m.modules[0], new Pooling(64, { mode: 'cls' })] }).encode(SENTENCES);
      out.forEach((v, i) => {
        expect(Array.from(v.subarray(0, 64))).toEqual(Array.from(reference[i]));
        expect(Array.from(v.subarray(64))).toEqual(Array.from(cls[i]));
      });
    } finally {
      m.dispose();
    }
  });

  test('no modules.json but config.json → word model + mean pooling', async () => {
    const dir = path.join(root, 'plain');
    copyWord(dir);
    const m = await SentenceTransformer.load(dir);
    try {
      const out = await m.encode(SENTENCES);
      out.forEach((v, i) => expect(Array.from(v)).toEqual(Array.from(reference[i])));
    } finally {
      m.dispose();
    }
  });

  test('unknown module type → error naming modules.json and the type', async () => {
    const dir = path.join(root, 'dense');
    copyWord(path.join(dir, '0_Transformer'));
    writeJson(path.join(dir, 'modules.json'), [
      { idx: 0, name: '0', path: '0_Transformer', type: 'sentence_transformers.models.Transformer' },
      { idx: 1, name: '1', path: '1_Pooling', type: 'sentence_transformers.models.Pooling' },
      { idx: 2, name: '2', path: '2_LSTM', type: 'sentence_transformers.models.LSTM' },
    ]);
    writeJson(path.join(dir, '1_Pooling/config.json'), { embedding_dimension: 64, pooling_mode: 'mean' });
    await expect(SentenceTransformer.load(dir)).rejects.toThrow(`${path.join(dir, 'modules.json')}: module "2" has type "sentence_transformers.models.LSTM", which is not supported`);
  });

  test('module path leaving the folder is refused', async () => {
    const dir = path.join(root, 'escape');
    writeJson(path.join(dir, 'modules.json'), [{ idx: 0, name: '0', path: '../plain', type: 'sentence_transformers.models.Transformer' }]);
    await expect(SentenceTransformer.load(dir)).rejects.toThrow(/leaves the model folder/);
  });

  test('not a model folder', async () => {
    await expect(SentenceTransformer.load(path.join(root, 'nothing-here'))).rejects.toThrow(/not a directory/);
    fs.mkdirSync(path.join(root, 'empty'));
    await expect(SentenceTransformer.load(path.join(root, 'empty'))).rejects.toThrow(/neither modules.json nor config.json/);
  });
});

describe('KoBertTransformer config validation', () => {
  function variant(name: string, edit: (cfg: Record<string, unknown>) => void): string {
    const dir = path.join(root, name);
    fs.cpSync(WORD, dir, { recursive: true });
    const file = path.join(dir, 'config.json');
    const cfg = JSON.parse(fs.readFileSync(file, 'utf8'));
    edit(cfg);
    writeJson(file, cfg);
    return dir;
  }

  test.each([
    ['missing hidden_size', (c: Record<string, unknown>) => delete c.hidden_size, 'field "hidden_size" must be an integer'],
    ['string num_hidden_layers', (c: Record<string, unknown>) => (c.num_hidden_layers = '2'), 'field "num_hidden_layers" must be an integer'],
    ['bad activation', (c: Record<string, unknown>) => (c.hidden_act = 'relu'), 'field "hidden_act" must be "gelu" or "gelu_new", got "relu"'],
    ['eps zero', (c: Record<string, unknown>) => (c.layer_norm_eps = 0), 'field "layer_norm_eps"'],
    ['heads do not divide', (c: Record<string, unknown>) => (c.num_attention_heads = 5), 'must be a multiple of "num_attention_heads"'],
    ['wrong layer count vs weights', (c: Record<string, unknown>) => (c.num_hidden_layers = 3), 'missing tensor "encoder.layer.2.attention.self.query.weight"'],
    ['wrong intermediate size vs weights', (c: Record<string, unknown>) => (c.intermediate_size = 99), 'tensor "encoder.layer.0.intermediate.dense.weight": expected shape [99, 64], got [100, 64]'],
  ])('%s', async (name, edit, msg) => {
    const dir = variant(name.replace(/\W+/g, '-'), edit);
    const err = await KoBertTransformer.load(dir).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.message).toContain(msg);
    expect(err?.message).toMatch(/config\.json|model\.safetensors/);
  });

  test('pytorch_model.bin is read (KoBERT shares the Transformer loader): a corrupt one → error naming the file', async () => {
    const dir = path.join(root, 'bin-only');
    fs.cpSync(WORD, dir, { recursive: true });
    fs.renameSync(path.join(dir, 'model.safetensors'), path.join(dir, 'pytorch_model.bin'));
    const bin = path.join(dir, 'pytorch_model.bin');
    const err = await KoBertTransformer.load(dir).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.message.startsWith(`${bin}: `)).toBe(true);
    expect(err?.message).toMatch(/ZIP/);
  });

  test('no weights file → error naming the folder and both formats', async () => {
    const dir = path.join(root, 'no-weights');
    fs.cpSync(WORD, dir, { recursive: true });
    fs.rmSync(path.join(dir, 'model.safetensors'));
    await expect(KoBertTransformer.load(dir)).rejects.toThrow(`${dir}: no model.safetensors or pytorch_model.bin found`);
  });

  test('maxSeqLength over max_position_embeddings → error', async () => {
    await expect(KoBertTransformer.load(WORD, { maxSeqLength: 513 })).rejects.toThrow(/maxSeqLength 513 exceeds "max_position_embeddings" \(512\)/);
  });

  test('do_lower_case lower-cases before tokenizing', async () => {
    const dir = path.join(root, 'lower');
    fs.cpSync(WORD, dir, { recursive: true });
    writeJson(path.join(dir, 'sentence_bert_config.json'), { max_seq_length: 32, do_lower_case: true });
    const lower = await KoBertTransformer.load(dir);
    const plain = await KoBertTransformer.load(WORD);
    try {
      expect(lower.getMaxSeqLength()).toBe(32);
      expect(lower.tokenize(['KoBERT ABC'])).toEqual(plain.tokenize(['kobert abc']));
      expect(lower.tokenize(['가'.repeat(100)])[0]).toHaveLength(32);
    } finally {
      lower.dispose();
      plain.dispose();
    }
  });
});

describe('encode()', () => {
  let model: SentenceTransformer;
  beforeAll(async () => {
    model = await SentenceTransformer.load(FIXTURE);
  });
  afterAll(() => model?.dispose());

  test('single string → one Float32Array; array → one per sentence', async () => {
    const one = await model.encode('한 남자가 음식을 먹는다.');
    expect(one).toBeInstanceOf(Float32Array);
    expect(one).toHaveLength(64);
    const many = await model.encode(SENTENCES);
    expect(Array.isArray(many)).toBe(true);
    expect(many).toHaveLength(SENTENCES.length);
    for (const v of many) expect(v).toHaveLength(64);
    expect(Array.from(many[0])).toEqual(Array.from(one));
    expect(await model.encode([])).toEqual([]);
  });

  test('order is restored after length sorting, for any batch size', async () => {
    const a = await model.encode(SENTENCES, { batchSize: 2 });
    const b = await model.encode([...SENTENCES].reverse(), { batchSize: 3 });
    b.reverse();
    // Different batch compositions may round differently in the core's kernels: compare with a tolerance.
    a.forEach((v, i) => v.forEach((x, k) => expect(x).toBeCloseTo(b[i][k], 5)));
  });

  test('normalizeEmbeddings gives unit vectors in the same direction', async () => {
    const raw = await model.encode(SENTENCES);
    const unit = await model.encode(SENTENCES, { normalizeEmbeddings: true });
    unit.forEach((v, i) => {
      expect(norm(v)).toBeCloseTo(1, 6);
      expect(cosSim(v, raw[i])[0][0]).toBeCloseTo(1, 6);
    });
  });

  test("outputValue 'token_embeddings' → tokens × hidden per sentence", async () => {
    const ids = model.tokenize(SENTENCES);
    const tok = await model.encode(SENTENCES, { outputValue: 'token_embeddings' });
    tok.forEach((v, i) => expect(v).toHaveLength(ids[i].length * 64));
    // mean of the token rows = the mean-pooled sentence embedding
    const pooled = await model.encode(SENTENCES);
    tok.forEach((v, i) => {
      const L = ids[i].length;
      for (let h = 0; h < 64; h++) {
        let s = 0;
        for (let t = 0; t < L; t++) s += v[t * 64 + h];
        expect(s / L).toBeCloseTo(pooled[i][h], 5);
      }
    });
  });

  test('concurrent encode() calls on one model all resolve to the sequential results', async () => {
    const expected = await model.encode(SENTENCES, { batchSize: 2 });
    const runs = await Promise.all(Array.from({ length: 6 }, () => model.encode(SENTENCES, { batchSize: 2 })));
    for (const r of runs) r.forEach((v, i) => expect(Array.from(v)).toEqual(Array.from(expected[i])));
  });

  test('showProgressBar works', async () => {
    const out = await model.encode(SENTENCES, { showProgressBar: true, batchSize: 2 });
    expect(out).toHaveLength(SENTENCES.length);
  });

  test('bad arguments', async () => {
    await expect(model.encode(SENTENCES, { batchSize: 0 })).rejects.toThrow(/batchSize must be a positive integer/);
    await expect(model.encode([1 as never])).rejects.toThrow(/sentences\[0\] must be a string/);
    await expect(model.encode(SENTENCES, { outputValue: 'x' as never })).rejects.toThrow(/outputValue/);
  });

  test('dispose → later encodes fail with a clear error', async () => {
    const m = await SentenceTransformer.load(FIXTURE);
    const inflight = m.encode(SENTENCES);
    m.dispose();
    // A single batch was already submitted before dispose: it completes.
    expect(await inflight).toHaveLength(SENTENCES.length);
    await expect(m.encode('x')).rejects.toThrow('model has been disposed');
  });
});
