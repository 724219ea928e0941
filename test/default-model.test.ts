// The shipped default model (weights/default) on our engine against Python sentence-transformers on the same
// folder: KorSTS-test figures of EmbeddingSimilarityEvaluator (to 1e-4), every pair's cosine score, the first
// embeddings, and the seed's semantic-search example. The Python side is weights/eval/korsts-test-python.json,
// written by weights/evaluate_default.py.
import * as fs from 'fs';
import * as path from 'path';

import { evaluateSts, readKorSts } from '../src/evaluation';
import { SentenceTransformer } from '../src/sentence-transformer';
import { DEMO_CORPUS, DEMO_QUERIES } from '../src/demo';
import { cosSim, semanticSearch } from '../src/util';

const ROOT = path.resolve(__dirname, '..');
const MODEL = path.join(ROOT, 'weights', 'default');
const STS_TEST = path.join(ROOT, '..', 'shared', 'data', 'kornlu', 'KorSTS', 'sts-test.tsv');
const PY = JSON.parse(fs.readFileSync(path.join(ROOT, 'weights', 'eval', 'korsts-test-python.json'), 'utf8'));

let model: SentenceTransformer;
beforeAll(async () => {
  model = await SentenceTransformer.load();
});
afterAll(() => model?.dispose());

test('SentenceTransformer.load() with no argument loads weights/default', () => {
  expect(model.getSentenceEmbeddingDimension()).toBe(256);
  expect(model.getMaxSeqLength()).toBe(64);
  expect(fs.realpathSync((model.modules[0] as unknown as { modelDir: string }).modelDir)).toBe(fs.realpathSync(MODEL));
});

test('first KorSTS-test embeddings equal Python (6 decimals written)', async () => {
  const { sentences, embeddings } = PY.first_embeddings as { sentences: string[]; embeddings: number[][] };
  const got = await model.encode(sentences);
  for (let i = 0; i < sentences.length; i++) {
    let maxAbs = 0;
    for (let j = 0; j < embeddings[i].length; j++) maxAbs = Math.max(maxAbs, Math.abs(got[i][j] - embeddings[i][j]));
    expect(maxAbs).toBeLessThanOrEqual(1e-4);
    expect(cosSim(got[i], Float32Array.from(embeddings[i]))[0][0]).toBeGreaterThanOrEqual(0.99999);
  }
});

test('KorSTS-test: the eight figures equal Python EmbeddingSimilarityEvaluator to 1e-4, every pair cosine to 1e-5', async () => {
  const data = readKorSts(STS_TEST);
  expect(data.scores.length).toBe(PY.pairs);
  const r = await evaluateSts(model, data);
  const line: string[] = [];
  for (const [k, v] of Object.entries(PY.figures as Record<string, number>)) {
    const [corr, sim] = k.split('_') as ['pearson' | 'spearman', string];
    const ours = (r as unknown as Record<string, Record<string, number>>)[sim][corr];
    line.push(`${k} ours ${(ours * 100).toFixed(4)} python ${(v * 100).toFixed(4)}`);
    expect(Math.abs(ours - v)).toBeLessThanOrEqual(1e-4);
  }
  console.log(line.join('\n'));
  const e1 = await model.encode(data.sentences1);
  const e2 = await model.encode(data.sentences2);
  let worst = 0;
  for (let i = 0; i < e1.length; i++) worst = Math.max(worst, Math.abs(cosSim(e1[i], e2[i])[0][0] - PY.cosine_scores[i]));
  console.log(`max |cosine ours - python| over ${e1.length} pairs: ${worst.toExponential(2)}`);
  expect(worst).toBeLessThanOrEqual(1e-5);
});

test("the seed's example ranks the expected sentence first for each query", async () => {
  const corpus = await model.encode(DEMO_CORPUS);
  const queries = await model.encode(DEMO_QUERIES);
  const hits = semanticSearch(queries, corpus, { topK: 1 });
  expect(hits.map((h) => DEMO_CORPUS[h[0].corpusId])).toEqual([
    '한 남자가 음식을 먹는다.',
    '원숭이 한 마리가 드럼을 연주한다.',
    '치타 한 마리가 먹이 뒤에서 달리고 있다.',
  ]);
});
