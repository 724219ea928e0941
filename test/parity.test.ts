/**
 * Parity with Python sentence-transformers on the golden fixture (test/golden/README.md):
 * test/fixtures/kobert-tiny-embeddings.json.gz holds SentenceTransformer.encode() outputs of the random-weight
 * test/fixtures/kobert-tiny model for 352 sentences (300 KorSTS test sentences + the tokenizer edge cases).
 *
 * Checked per sentence: token ids equal; max |a - b| <= 1e-4 and cosine >= 0.99999 for mean, cls and max
 * pooling and normalized mean, at batch sizes 1, 7 and 32, on the default ISA, the scalar path and AVX2.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as zlib from 'zlib';

import { detectIsa } from '../src/binding';
import { KoBertTransformer } from '../src/models/transformer';
import { Pooling } from '../src/models/pooling';
import { SentenceTransformer } from '../src/sentence-transformer';

const ROOT = path.resolve(__dirname, '..');
const MODEL_DIR = path.join(ROOT, 'test/fixtures/kobert-tiny');
const FIXTURE = path.join(ROOT, 'test/fixtures/kobert-tiny-embeddings.json.gz');
const MAX_ABS = 1e-4;
const MIN_COS = 0.99999;

interface Golden {
  maxSeqLength: number;
  sentences: string[];
  tokenIds: number[][];
  embeddings: { mean: number[][]; cls: number[][]; max: number[][]; meanNormalized: number[][] };
}

const golden: Golden = JSON.parse(zlib.gunzipSync(fs.readFileSync(FIXTURE)).toString('utf8'));

interface Stats {
  maxAbs: number;
  minCos: number;
}
const seen = new Map<string, Stats>();

/** Compares one run against the reference; records and returns the worst per-sentence numbers. */
function compare(label: string, got: Float32Array[], want: number[][]): Stats {
  expect(got).toHaveLength(want.length);
  let maxAbs = 0;
  let minCos = 1;
  const bad: string[] = [];
  got.forEach((g, i) => {
    const w = want[i];
    expect(g).toHaveLength(w.length);
    let d = 0;
    let dot = 0;
    let ng = 0;
    let nw = 0;
    for (let k = 0; k < w.length; k++) {
      const ref = Math.fround(w[k]);
      d = Math.max(d, Math.abs(g[k] - ref));
      dot += g[k] * ref;
      ng += g[k] * g[k];
      nw += ref * ref;
    }
    const cos = dot / Math.sqrt(ng * nw);
    maxAbs = Math.max(maxAbs, d);
    minCos = Math.min(minCos, cos);
    if (!(d <= MAX_ABS && cos >= MIN_COS) && bad.length < 5) {
      bad.push(`#${i} ${JSON.stringify(golden.sentences[i].slice(0, 40))}: max abs ${d.toExponential(3)}, cos ${cos.toFixed(7)}`);
    }
  });
  const s = seen.get(label) ?? { maxAbs: 0, minCos: 1 };
  seen.set(label, { maxAbs: Math.max(s.maxAbs, maxAbs), minCos: Math.min(s.minCos, minCos) });
  if (bad.length) throw new Error(`${label}: sentences off the reference:\n  ${bad.join('\n  ')}`);
  return { maxAbs, minCos };
}

const best = detectIsa();
const isas: string[] = ['auto', 'scalar'];
if (best === 'avx512') isas.push('avx2');

afterAll(() => {
  const rows = [...seen.entries()].map(([k, v]) => `  ${k.padEnd(40)} max abs ${v.maxAbs.toExponential(3)}  min cos ${v.minCos.toFixed(10)} (1 - cos = ${(1 - v.minCos).toExponential(2)})`);
  console.log(`parity vs Python sentence-transformers (${golden.sentences.length} sentences, detected ISA ${best}):\n${rows.join('\n')}`);
});

test('fixture is what the README describes', () => {
  expect(golden.sentences.length).toBeGreaterThan(300);
  expect(golden.tokenIds).toHaveLength(golden.sentences.length);
  for (const k of ['mean', 'cls', 'max', 'meanNormalized'] as const) expect(golden.embeddings[k]).toHaveLength(golden.sentences.length);
});

describe('SentenceTransformer.load(test/fixtures/kobert-tiny)', () => {
  let model: SentenceTransformer;
  beforeAll(async () => {
    model = await SentenceTransformer.load(MODEL_DIR);
  });
  afterAll(() => model?.dispose());

  test('configuration matches the Python model', () => {
    expect(model.getMaxSeqLength()).toBe(golden.maxSeqLength);
    expect(model.getSentenceEmbeddingDimension()).toBe(64);
  });

  test('token ids equal Python', () => {
    const ids = model.tokenize(golden.sentences);
    let mismatches = 0;
    ids.forEach((t, i) => {
      if (JSON.stringify(t) !== JSON.stringify(golden.tokenIds[i])) mismatches++;
    });
    expect(mismatches).toBe(0);
    expect(ids).toEqual(golden.tokenIds);
  });

  test('encode (mean pooling, batch 32) equals Python', async () => {
    compare('load() mean b32', await model.encode(golden.sentences), golden.embeddings.mean);
  });

  test('normalizeEmbeddings equals Python normalize_embeddings=True', async () => {
    compare('load() meanNormalized b32', await model.encode(golden.sentences, { normalizeEmbeddings: true }), golden.embeddings.meanNormalized);
  });
});

describe.each(isas)('isa %s', (isa) => {
  let word: KoBertTransformer;
  beforeAll(async () => {
    word = await KoBertTransformer.load(path.join(MODEL_DIR, '0_KoBertTransformer'), { isa });
  });
  afterAll(() => word?.dispose());

  test('runs on the requested instruction set', () => {
    // KST_ISA in the environment can only lower the ISA (scalar < avx2 < avx512).
    const rank = ['scalar', 'avx2', 'avx512'];
    const env = process.env.KST_ISA && process.env.KST_ISA !== 'auto' ? process.env.KST_ISA : 'avx512';
    const wanted = isa === 'auto' ? best : isa;
    const expected = rank[Math.min(rank.indexOf(wanted), rank.indexOf(env), rank.indexOf(best))];
    expect(word.info().isa).toBe(expected);
  });

  test.each([
    ['mean', 1],
    ['mean', 7],
    ['mean', 32],
    ['cls', 1],
    ['cls', 7],
    ['cls', 32],
    ['max', 1],
    ['max', 7],
    ['max', 32],
  ] as const)('%s pooling, batch size %d', async (mode, batchSize) => {
    const st = new SentenceTransformer({ modules: [word, new Pooling(64, { mode })] });
    const got = await st.encode(golden.sentences, { batchSize });
    compare(`${isa}→${word.info().isa} ${mode} b${batchSize}`, got, golden.embeddings[mode]);
  });

  test('normalized mean, batch size 7', async () => {
    const st = new SentenceTransformer({ modules: [word, new Pooling(64, { mode: 'mean' })] });
    const got = await st.encode(golden.sentences, { batchSize: 7, normalizeEmbeddings: true });
    compare(`${isa}→${word.info().isa} meanNormalized b7`, got, golden.embeddings.meanNormalized);
  });
});

// The 12-layer 768-wide random model (`make_golden.py --base`, gitignored): checked when it has been generated.
const BASE_DIR = path.join(ROOT, 'test/golden/models/kobert-base');
const BASE_FIXTURE = path.join(ROOT, 'test/golden/out/kobert-base-embeddings.json.gz');
const haveBase = fs.existsSync(BASE_DIR) && fs.existsSync(BASE_FIXTURE);
(haveBase ? describe : describe.skip)('kobert-base (12 x 768, generated locally)', () => {
  test('mean / cls / max equal Python', async () => {
    const g: Golden = JSON.parse(zlib.gunzipSync(fs.readFileSync(BASE_FIXTURE)).toString('utf8'));
    const model = await SentenceTransformer.load(BASE_DIR);
    try {
      expect(model.tokenize(g.sentences)).toEqual(g.tokenIds);
      const word = model.modules[0] as KoBertTransformer;
      for (const mode of ['mean', 'cls', 'max'] as const) {
        if (!g.embeddings[mode]) continue;
        const st = new SentenceTransformer({ modules: [word, new Pooling(word.getWordEmbeddingDimension(), { mode })] });
        compare(`base ${word.info().isa} ${mode} b32`, await st.encode(g.sentences), g.embeddings[mode]);
      }
    } finally {
      model.dispose();
    }
  });
});
