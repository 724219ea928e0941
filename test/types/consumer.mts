// Type test (ESM consumer): compiled with `tsc --noEmit` against the package's published types
// (npm run test:types here; test/package.test.ts against the installed tarball). Never run.
import { SentenceTransformer, KoBertTransformer, Pooling, Normalize, util, cosSim, semanticSearch, evaluateSts, readKorSts, detectIsa } from 'ko-sentence-transformers';
import type { EncodeOptions, StsResult, StsData, NativeIsa, NativeModelInfo } from 'ko-sentence-transformers';
import kst from 'ko-sentence-transformers';

export async function consumer(dir: string): Promise<void> {
  const model: SentenceTransformer = await SentenceTransformer.load(dir, { threads: 2, isa: 'scalar' });
  const one: Float32Array = await model.encode('한 남자가 음식을 먹는다.');
  const opts: EncodeOptions = { batchSize: 8, normalizeEmbeddings: true, showProgressBar: false };
  const many: Float32Array[] = await model.encode(['가', '나'], opts);
  const sims: number[][] = cosSim(one, many);
  const hits = semanticSearch([one], many, { topK: 1 })[0];
  const best: { corpusId: number; score: number } = hits[0];
  const d: number = model.getSentenceEmbeddingDimension() + model.getMaxSeqLength() + best.score + sims[0][0];
  util.dotScore(one, many[0]);

  const word: KoBertTransformer = await KoBertTransformer.load(dir, { maxSeqLength: 75 });
  const info: NativeModelInfo = word.info();
  const isa: NativeIsa = info.isa;
  const composed = new SentenceTransformer({ modules: [word, new Pooling(word.getWordEmbeddingDimension(), { mode: 'mean' }), new Normalize()] });
  const data: StsData = readKorSts('sts-test.tsv');
  const r: StsResult = await evaluateSts(composed, data, { batchSize: 16 });
  const rho: number = r.cosine.spearman + r.dot.pearson + d;
  const best2: NativeIsa = detectIsa();
  void [isa, rho, best2, kst.SentenceTransformer];
  model.dispose();
  composed.dispose();

  // @ts-expect-error encode takes strings
  await model.encode(42);
  // @ts-expect-error unknown similarity
  void r.jaccard.spearman;
}
