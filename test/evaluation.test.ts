/**
 * The KorSTS evaluator (src/evaluation.ts) against Python's EmbeddingSimilarityEvaluator: the eight figures
 * for the random-weight fixture model on the first 200 KorSTS-test pairs, made by
 * test/golden/make_eval_golden.py (test/fixtures/eval-golden.json), must agree to 1e-4.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import {
  evaluateSts,
  formatStsResult,
  pearson,
  rankAverage,
  readKorSts,
  spearman,
  SIMILARITY_NAMES,
  stsFiguresFromEmbeddings,
  stsTableRow,
} from '../src/evaluation';
import { SentenceTransformer } from '../src/sentence-transformer';

const ROOT = path.resolve(__dirname, '..');
const golden = JSON.parse(fs.readFileSync(path.join(ROOT, 'test/fixtures/eval-golden.json'), 'utf8')) as {
  figures: Record<string, { pearson: number; spearman: number }>;
  sentences1: string[];
  sentences2: string[];
  scores: number[];
};
const DATA = process.env.KO_ST_DATA ?? path.join(ROOT, '..', 'shared', 'data');
const STS_TEST = path.join(DATA, 'kornlu', 'KorSTS', 'sts-test.tsv');

describe('statistics', () => {
  test('average ranks for ties, like scipy.stats.rankdata', () => {
    expect(Array.from(rankAverage([10, 20, 10, 30, 20, 20]))).toEqual([1.5, 4, 1.5, 6, 4, 4]);
    expect(Array.from(rankAverage([3, 1, 2]))).toEqual([3, 1, 2]);
  });

  test('pearson and spearman on known values', () => {
    expect(pearson([1, 2, 3, 4], [2, 4, 6, 8])).toBeCloseTo(1, 12);
    expect(pearson([1, 2, 3, 4], [8, 6, 4, 2])).toBeCloseTo(-1, 12);
    // scipy.stats.pearsonr([1,2,3,4,5],[2,1,4,3,5]) = 0.8
    expect(pearson([1, 2, 3, 4, 5], [2, 1, 4, 3, 5])).toBeCloseTo(0.8, 12);
    // scipy.stats.spearmanr([1,2,2,3],[1,3,2,4]) = 0.9486832980505138 (ties averaged)
    expect(spearman([1, 2, 2, 3], [1, 3, 2, 4])).toBeCloseTo(0.9486832980505138, 12);
    // monotone but not linear: spearman 1, pearson < 1
    expect(spearman([1, 2, 3, 4], [1, 10, 100, 1000])).toBeCloseTo(1, 12);
    expect(Number.isNaN(pearson([1, 1, 1], [1, 2, 3]))).toBe(true);
  });

  test('similarities: cosine, negative euclidean and manhattan distances, dot', () => {
    const a = [Float32Array.from([1, 0]), Float32Array.from([3, 4])];
    const b = [Float32Array.from([0, 1]), Float32Array.from([3, 4])];
    const r = stsFiguresFromEmbeddings(a.concat(a), b.concat(b.slice().reverse()), [0, 1, 0.2, 0.5]);
    expect(r.pairs).toBe(4);
    for (const n of SIMILARITY_NAMES) expect(Number.isFinite(r[n].pearson)).toBe(true);
  });
});

describe('readKorSts', () => {
  test('splits on tabs with no quoting, skips the header, divides scores by 5', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kst-sts-'));
    const f = path.join(dir, 'x.tsv');
    fs.writeFileSync(
      f,
      'genre\tfilename\tyear\tid\tscore\tsentence1\tsentence2\n' +
        'main-captions\tMSRvid\t2012test\t0001\t5.000\t"따옴표로 시작\t끝에 "따옴표\n' +
        'main-news\theadlines\t2015\t0002\t0.750\t가\t나\r\n',
    );
    try {
      const d = readKorSts(f);
      expect(d.sentences1).toEqual(['"따옴표로 시작', '가']);
      expect(d.sentences2).toEqual(['끝에 "따옴표', '나']);
      expect(d.scores).toEqual([1, 0.15]);
      fs.writeFileSync(f, 'header\nonly\ttwo\n');
      expect(() => readKorSts(f)).toThrow(/line 2: expected 7 tab-separated columns/);
      fs.writeFileSync(f, 'h\na\tb\tc\td\tnope\te\tf\n');
      expect(() => readKorSts(f)).toThrow(/column "score" is not a number/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  (fs.existsSync(STS_TEST) ? test : test.skip)('reads the real sts-test.tsv: 1,379 pairs; the fixture holds its first 200', () => {
    const d = readKorSts(STS_TEST);
    expect(d.scores.length).toBe(1379);
    const n = golden.scores.length;
    expect(d.sentences1.slice(0, n)).toEqual(golden.sentences1);
    expect(d.sentences2.slice(0, n)).toEqual(golden.sentences2);
    d.scores.slice(0, n).forEach((s, i) => expect(s).toBeCloseTo(golden.scores[i], 12));
  });
});

describe('evaluateSts equals Python EmbeddingSimilarityEvaluator', () => {
  let model: SentenceTransformer;
  beforeAll(async () => {
    model = await SentenceTransformer.load(path.join(ROOT, 'test/fixtures/kobert-tiny'));
  });
  afterAll(() => model?.dispose());

  test('the eight figures agree to 1e-4 (200 KorSTS-test pairs, fixture model)', async () => {
    const result = await evaluateSts(model, { sentences1: golden.sentences1, sentences2: golden.sentences2, scores: golden.scores });
    expect(result.pairs).toBe(200);
    const diffs: string[] = [];
    for (const name of SIMILARITY_NAMES) {
      for (const stat of ['pearson', 'spearman'] as const) {
        const d = Math.abs(result[name][stat] - golden.figures[name][stat]);
        diffs.push(`${name} ${stat}: ours ${result[name][stat].toFixed(6)} python ${golden.figures[name][stat].toFixed(6)} |Δ| ${d.toExponential(1)}`);
        expect(d).toBeLessThan(1e-4);
      }
    }
    console.log(diffs.join('\n'));
  });

  test('pairs form gives the same figures; table is ×100 with two decimals in the seed order', async () => {
    const pairs = golden.sentences1.slice(0, 20).map((s, i) => ({ sentence1: s, sentence2: golden.sentences2[i], score: golden.scores[i] }));
    const a = await evaluateSts(model, pairs, { batchSize: 7 });
    const b = await evaluateSts(model, { sentences1: golden.sentences1.slice(0, 20), sentences2: golden.sentences2.slice(0, 20), scores: golden.scores.slice(0, 20) });
    for (const n of SIMILARITY_NAMES) {
      expect(a[n].pearson).toBeCloseTo(b[n].pearson, 5);
      expect(a[n].spearman).toBeCloseTo(b[n].spearman, 5);
    }
    const row = stsTableRow(a);
    expect(row).toHaveLength(8);
    row.forEach((c) => expect(c).toMatch(/^-?\d+\.\d\d$/));
    expect(row[1]).toBe((a.cosine.spearman * 100).toFixed(2));
    const table = formatStsResult(a, 'kobert-tiny');
    expect(table.split('\n')[0]).toBe(
      '| Model | Cosine Pearson | Cosine Spearman | Euclidean Pearson | Euclidean Spearman | Manhattan Pearson | Manhattan Spearman | Dot Pearson | Dot Spearman |',
    );
    expect(table.split('\n')[2]).toBe(`| kobert-tiny | ${row.join(' | ')} |`);
  });

  test('bad input is refused', async () => {
    await expect(evaluateSts(model, { sentences1: ['a', 'b'], sentences2: ['a'], scores: [1, 2] })).rejects.toThrow(/sentences2/);
    await expect(evaluateSts(model, [{ sentence1: 'a', sentence2: 'b', score: 1 }])).rejects.toThrow(/at least 2/);
  });
});
