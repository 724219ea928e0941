/**
 * BERT / RoBERTa / XLM-R / DistilBERT (+ Dense + Normalize) parity with Python sentence-transformers, on the
 * random-weight models of test/golden/make_golden_arch.py (test/fixtures/arch/manifest.json: every architecture
 * x weight format (model.safetensors, pytorch_model.bin) x tokenizer kind (WordPiece, Unigram, byte-level BPE),
 * Hub layout, all six pooling modes). Tolerance: fp32 max abs <= 1e-4 and cosine >= 0.99999 per sentence.
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
interface ManifestModel {
  name: string;
  arch: string;
  modelType: string;
  format: 'safetensors' | 'bin';
  tokenizer: 'wordpiece' | 'unigram' | 'bpe';
  pooling: string[];
  dense: boolean;
  normalize: boolean;
  legacyPositionIds: boolean;
  dim: number;
  files: Record<string, { bytes: number; sha256: string }>;
}
interface Manifest {
  matrix: { arch: string[]; format: string[]; tokenizer: string[]; pooling: string[] };
  models: ManifestModel[];
}
const golden = JSON.parse(zlib.gunzipSync(fs.readFileSync(path.join(ARCH, 'embeddings.json.gz'))).toString('utf8')) as Golden;
const manifest = JSON.parse(fs.readFileSync(path.join(ARCH, 'manifest.json'), 'utf8')) as Manifest;

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

test('the fixtures cover every architecture x weight format x tokenizer kind and every pooling mode', () => {
  const cells = new Set(manifest.models.map((m) => `${m.arch}/${m.format}/${m.tokenizer}`));
  for (const a of manifest.matrix.arch) for (const f of manifest.matrix.format) for (const k of manifest.matrix.tokenizer) expect(cells).toContain(`${a}/${f}/${k}`);
  expect(manifest.matrix.arch).toEqual(['bert', 'roberta', 'xlm-roberta', 'distilbert']);
  expect(manifest.matrix.format).toEqual(['safetensors', 'bin']);
  expect(manifest.matrix.tokenizer).toEqual(['wordpiece', 'unigram', 'bpe']);
  expect(new Set(manifest.models.flatMap((m) => m.pooling))).toEqual(new Set(['mean', 'cls', 'max', 'mean_sqrt_len_tokens', 'weightedmean', 'lasttoken']));
  expect(Object.keys(golden.models).sort()).toEqual(manifest.models.map((m) => m.name).sort());
  for (const m of manifest.models) {
    const weights = m.format === 'bin' ? 'pytorch_model.bin' : 'model.safetensors';
    expect(Object.keys(m.files)).toContain(weights);
    for (const [rel, f] of Object.entries(m.files)) expect(fs.statSync(path.join(ARCH, 'models', m.name, rel)).size).toBe(f.bytes);
  }
});

const rows: string[] = [];
afterAll(() => {
  const head = ['model', 'arch', 'format', 'tokenizer', 'pooling (+modules)', 'max abs', '1 - min cos'];
  const table = [head, ...rows.map((r) => r.split('\t'))];
  const w = head.map((_, i) => Math.max(...table.map((r) => (r[i] ?? '').length)));
  console.log(table.map((r) => r.map((c, i) => (c ?? '').padEnd(w[i])).join('  ')).join('\n'));
});

describe.each(manifest.models.map((m) => [m.name, m] as const))('%s', (name, spec) => {
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
    const mods = spec.pooling.join('+') + (spec.dense ? ' +Dense' : '') + (spec.normalize ? ' +Normalize' : '');
    rows.push([name, spec.modelType, spec.format + (spec.legacyPositionIds ? ' (+position_ids)' : ''), spec.tokenizer, mods,
      maxAbs.toExponential(2), (1 - minCos).toExponential(2)].join('\t'));
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
