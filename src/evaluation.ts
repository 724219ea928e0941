/**
 * KorSTS evaluation: the port of sentence-transformers' EmbeddingSimilarityEvaluator (and of the seed
 * project's benchmark.py, which runs it on KorSTS test with scores / 5.0).
 *
 * Both sentence lists are encoded (batch size 16 by default, as in Python), the pairwise cosine, euclidean
 * (negative distance), manhattan (negative distance) and dot similarities are compared with the gold scores
 * by Pearson's r and Spearman's rho (average ranks for ties, as scipy.stats.spearmanr). All statistics are
 * computed in float64 from the float32 embeddings.
 */
import * as fs from 'fs';

export interface StsPair {
  sentence1: string;
  sentence2: string;
  /** Gold similarity (KorSTS: 0–5 in the file, /5 after readKorSts). */
  score: number;
}

export interface StsData {
  sentences1: string[];
  sentences2: string[];
  scores: number[];
}

export type SimilarityName = 'cosine' | 'euclidean' | 'manhattan' | 'dot';
export const SIMILARITY_NAMES: readonly SimilarityName[] = ['cosine', 'euclidean', 'manhattan', 'dot'];

export interface CorrelationFigures {
  pearson: number;
  spearman: number;
}

/** The eight figures of the seed's table (plain correlations in [-1, 1]; see formatStsResult for ×100). */
export type StsResult = Record<SimilarityName, CorrelationFigures> & { pairs: number };

export interface EvaluateStsOptions {
  /** Sentences per encode batch (default 16, like EmbeddingSimilarityEvaluator). */
  batchSize?: number;
  /** Shows a progress bar while each of the two sentence lists is encoded. */
  showProgressBar?: boolean;
}

/** What evaluateSts needs from a model: SentenceTransformer satisfies it. */
export interface StsEncoder {
  encode(sentences: string[], options?: { batchSize?: number; showProgressBar?: boolean }): Promise<Float32Array[]>;
}

/**
 * Reads a KorSTS .tsv file: header line skipped, each line split on "\t" with no quote handling (some
 * sentences hold quote characters), columns genre, filename, year, id, score, sentence1, sentence2.
 * Scores are divided by `scale` (default 5.0, as the seed's benchmark does) so they lie in [0, 1].
 */
export function readKorSts(tsvPath: string, options: { scale?: number } = {}): StsData {
  const scale = options.scale ?? 5.0;
  const text = fs.readFileSync(tsvPath, 'utf8');
  const lines = text.split('\n');
  const data: StsData = { sentences1: [], sentences2: [], scores: [] };
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i].replace(/\r$/, '');
    if (line === '') continue;
    const cols = line.split('\t');
    if (cols.length < 7) throw new Error(`${tsvPath}: line ${i + 1}: expected 7 tab-separated columns, found ${cols.length}`);
    const score = Number(cols[4]);
    if (cols[4].trim() === '' || !Number.isFinite(score)) {
      throw new Error(`${tsvPath}: line ${i + 1}: column "score" is not a number: ${JSON.stringify(cols[4])}`);
    }
    data.sentences1.push(cols[5]);
    data.sentences2.push(cols[6]);
    data.scores.push(score / scale);
  }
  if (data.scores.length === 0) throw new Error(`${tsvPath}: no sentence pairs (expected a header line then tab-separated rows)`);
  return data;
}

function toData(input: StsPair[] | StsData): StsData {
  if (Array.isArray(input)) {
    return {
      sentences1: input.map((p) => p.sentence1),
      sentences2: input.map((p) => p.sentence2),
      scores: input.map((p) => p.score),
    };
  }
  return input;
}

/** Ranks 1..n with ties given their average rank (scipy.stats.rankdata(method='average')). */
export function rankAverage(x: ArrayLike<number>): Float64Array {
  const n = x.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => x[a] - x[b]);
  const ranks = new Float64Array(n);
  let i = 0;
  while (i < n) {
    let j = i;
    while (j + 1 < n && x[order[j + 1]] === x[order[i]]) j++;
    const r = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) ranks[order[k]] = r;
    i = j + 1;
  }
  return ranks;
}

/** Pearson's correlation coefficient (NaN when either input is constant, like scipy). */
export function pearson(x: ArrayLike<number>, y: ArrayLike<number>): number {
  const n = x.length;
  if (n !== y.length) throw new RangeError(`pearson: lengths differ (${n} vs ${y.length})`);
  if (n < 2) throw new RangeError('pearson: needs at least 2 values');
  let mx = 0;
  let my = 0;
  for (let i = 0; i < n; i++) {
    mx += x[i];
    my += y[i];
  }
  mx /= n;
  my /= n;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    const dx = x[i] - mx;
    const dy = y[i] - my;
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
  }
  if (sxx === 0 || syy === 0) return NaN;
  const r = sxy / Math.sqrt(sxx * syy);
  return Math.max(-1, Math.min(1, r));
}

/** Spearman's rank correlation: Pearson's r of the average ranks. */
export function spearman(x: ArrayLike<number>, y: ArrayLike<number>): number {
  return pearson(rankAverage(x), rankAverage(y));
}

/** The four pairwise similarities of sentence-transformers (distances negated so larger = more similar). */
export function pairwiseSimilarities(a: Float32Array[], b: Float32Array[]): Record<SimilarityName, Float64Array> {
  const n = a.length;
  const out = {
    cosine: new Float64Array(n),
    euclidean: new Float64Array(n),
    manhattan: new Float64Array(n),
    dot: new Float64Array(n),
  };
  for (let i = 0; i < n; i++) {
    const u = a[i];
    const v = b[i];
    if (u.length !== v.length) throw new RangeError(`pair ${i}: embedding sizes differ (${u.length} vs ${v.length})`);
    let dot = 0;
    let uu = 0;
    let vv = 0;
    let l1 = 0;
    let l2 = 0;
    for (let k = 0; k < u.length; k++) {
      dot += u[k] * v[k];
      uu += u[k] * u[k];
      vv += v[k] * v[k];
      const d = u[k] - v[k];
      l1 += Math.abs(d);
      l2 += d * d;
    }
    // torch's F.normalize clamps the norm at 1e-12, as pairwise_cos_sim does.
    out.cosine[i] = dot / (Math.max(Math.sqrt(uu), 1e-12) * Math.max(Math.sqrt(vv), 1e-12));
    out.euclidean[i] = -Math.sqrt(l2);
    out.manhattan[i] = -l1;
    out.dot[i] = dot;
  }
  return out;
}

/** The eight figures from embeddings already computed (same order as the gold scores). */
export function stsFiguresFromEmbeddings(embeddings1: Float32Array[], embeddings2: Float32Array[], scores: ArrayLike<number>): StsResult {
  if (embeddings1.length !== embeddings2.length || embeddings1.length !== scores.length) {
    throw new RangeError(`evaluateSts: ${embeddings1.length} / ${embeddings2.length} embeddings for ${scores.length} scores`);
  }
  const sims = pairwiseSimilarities(embeddings1, embeddings2);
  const result = { pairs: scores.length } as StsResult;
  for (const name of SIMILARITY_NAMES) {
    result[name] = { pearson: pearson(scores, sims[name]), spearman: spearman(scores, sims[name]) };
  }
  return result;
}

/**
 * Evaluates a model on sentence pairs with gold scores, like Python's
 * `EmbeddingSimilarityEvaluator(s1, s2, scores, similarity_fn_names=['cosine','euclidean','manhattan','dot'])`.
 */
export async function evaluateSts(model: StsEncoder, data: StsPair[] | StsData, options: EvaluateStsOptions = {}): Promise<StsResult> {
  const { batchSize = 16, showProgressBar = false } = options;
  const { sentences1, sentences2, scores } = toData(data);
  if (sentences1.length !== sentences2.length || sentences1.length !== scores.length) {
    throw new RangeError(`evaluateSts: ${sentences1.length} sentences1, ${sentences2.length} sentences2, ${scores.length} scores`);
  }
  if (scores.length < 2) throw new RangeError('evaluateSts: needs at least 2 sentence pairs');
  for (let i = 0; i < scores.length; i++) {
    if (typeof scores[i] !== 'number' || !Number.isFinite(scores[i])) throw new TypeError(`evaluateSts: scores[${i}] is not a finite number`);
  }
  const e1 = await model.encode(sentences1, { batchSize, showProgressBar });
  const e2 = await model.encode(sentences2, { batchSize, showProgressBar });
  return stsFiguresFromEmbeddings(e1, e2, scores);
}

/** Column headers of the seed's table, in its order. */
export const STS_TABLE_HEADERS = [
  'Cosine Pearson',
  'Cosine Spearman',
  'Euclidean Pearson',
  'Euclidean Spearman',
  'Manhattan Pearson',
  'Manhattan Spearman',
  'Dot Pearson',
  'Dot Spearman',
] as const;

/** The eight figures ×100 with two decimals, in the seed table's column order. */
export function stsTableRow(result: StsResult): string[] {
  const cells: string[] = [];
  for (const name of SIMILARITY_NAMES) {
    cells.push((result[name].pearson * 100).toFixed(2), (result[name].spearman * 100).toFixed(2));
  }
  return cells;
}

/** A markdown table (header + one row) like the seed's README: `| Model | Cosine Pearson | ... |`. */
export function formatStsResult(result: StsResult, modelName = 'model'): string {
  const head = `| Model | ${STS_TABLE_HEADERS.join(' | ')} |`;
  const rule = `|${' --- |'.repeat(STS_TABLE_HEADERS.length + 1)}`;
  const row = `| ${modelName} | ${stsTableRow(result).join(' | ')} |`;
  return [head, rule, row].join('\n');
}
