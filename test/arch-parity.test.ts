/**
 * BERT / RoBERTa / XLM-R / DistilBERT (+ Dense + Normalize) parity with Python sentence-transformers, on the
 * random-weight models of test/golden/make_golden_arch.py (test/fixtures/arch/models, Hub layout, safetensors
 * and pytorch_model.bin). Tolerance: fp32 max abs <= 1e-4 and cosine >= 0.99999 per sentence.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as zlib from 'zlib';

import { SentenceTransformer } from '../src/sentence-transformer';

const ARCH = path.join(__dirname, 'fixtures', 'arch');

interface Golden {
  sentences: string[];
  models: Record<string, { dim: number; tokenIds: number[][]; embeddings: number[][] }>;
}
const golden = JSON.parse(zlib.gunzipSync(fs.readFileSync(path.join(ARCH, 'embeddings.json.gz'))).toString('utf8')) as Golden;

function compare(a: Float32Array, b: number[]): { maxAbs: number; cos: number } {
  let maxAbs = 0;
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < b.length; i++) {
    maxAbs = Math.max(maxAbs, Math.abs(a[i] - b[i]));
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return { maxAbs, cos: na === 0 && nb === 0 ? 1 : dot / Math.sqrt(na * nb) };
}

describe.each(Object.keys(golden.models))('%s', (name) => {
  const g = golden.models[name];
  let model: SentenceTransformer;
  beforeAll(async () => {
    model = await SentenceTransformer.load(path.join(ARCH, 'models', name), { threads: 2 });
  });
  afterAll(() => model?.dispose());

  test('token ids equal sentence-transformers (incl. truncation)', () => {
    expect(model.tokenize(golden.sentences)).toEqual(g.tokenIds);
  });

  test('embeddings equal sentence-transformers (max abs <= 1e-4, cosine >= 0.99999)', async () => {
    const emb = await model.encode(golden.sentences, { batchSize: 16 });
    expect(model.getSentenceEmbeddingDimension()).toBe(g.dim);
    let maxAbs = 0;
    let minCos = 1;
    emb.forEach((e, i) => {
      expect(e.length).toBe(g.dim);
      const c = compare(e, g.embeddings[i]);
      maxAbs = Math.max(maxAbs, c.maxAbs);
      minCos = Math.min(minCos, c.cos);
    });
    console.log(`${name}: ${emb.length} sentences, max abs ${maxAbs.toExponential(2)}, 1 - min cos ${(1 - minCos).toExponential(2)}`);
    expect(maxAbs).toBeLessThanOrEqual(1e-4);
    expect(minCos).toBeGreaterThanOrEqual(0.99999);
  });
});

describe('Hub ids from the local Hugging Face cache', () => {
  const os = require('os') as typeof import('os');
  const cache = fs.mkdtempSync(path.join(os.tmpdir(), 'kst-hub-'));
  const commit = 'a'.repeat(40);
  const repo = path.join(cache, 'models--jhgan--ko-sbert-sts');
  fs.mkdirSync(path.join(repo, 'refs'), { recursive: true });
  fs.mkdirSync(path.join(repo, 'snapshots'), { recursive: true });
  fs.writeFileSync(path.join(repo, 'refs', 'main'), `${commit}\n`);
  fs.cpSync(path.join(ARCH, 'models', 'bert-wordpiece-bin'), path.join(repo, 'snapshots', commit), { recursive: true });
  // Cache-only: these tests must never reach the network (downloads are tested against a loopback server in hub.test.ts).
  const prevOffline = process.env.HF_HUB_OFFLINE;
  beforeAll(() => {
    process.env.HF_HUB_OFFLINE = '1';
  });
  afterAll(() => {
    if (prevOffline === undefined) delete process.env.HF_HUB_OFFLINE;
    else process.env.HF_HUB_OFFLINE = prevOffline;
  });

  test("load('org/name') resolves refs/main → snapshots/<commit> and equals the folder load", async () => {
    const m = await SentenceTransformer.load('jhgan/ko-sbert-sts', { cacheDir: cache });
    const e = await m.encode(golden.sentences.slice(0, 3));
    e.forEach((v, i) => expect(compare(v, golden.models['bert-wordpiece-bin'].embeddings[i]).maxAbs).toBeLessThanOrEqual(1e-4));
    m.dispose();
    const prev = process.env.HF_HUB_CACHE;
    process.env.HF_HUB_CACHE = cache;
    try {
      const m2 = await SentenceTransformer.load('jhgan/ko-sbert-sts', { revision: commit });
      m2.dispose();
    } finally {
      if (prev === undefined) delete process.env.HF_HUB_CACHE;
      else process.env.HF_HUB_CACHE = prev;
    }
  });

  test('offline, a model that is not cached → error saying how to get it', async () => {
    await expect(SentenceTransformer.load('jhgan/ko-sroberta-multitask', { cacheDir: cache })).rejects.toThrow(
      /jhgan\/ko-sroberta-multitask: not in the Hugging Face cache .*huggingface-cli download jhgan\/ko-sroberta-multitask/,
    );
    await expect(SentenceTransformer.load('jhgan/ko-sbert-sts', { cacheDir: cache, revision: 'v2' })).rejects.toThrow(/revision "v2" is not in the cache/);
    await expect(SentenceTransformer.load('jhgan/ko-sbert-sts', { cacheDir: cache, revision: '../x' })).rejects.toThrow(/not a valid branch/);
  });
});
