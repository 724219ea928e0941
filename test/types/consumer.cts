// Type test (CommonJS consumer): `import x = require(...)` resolves through the package's "require" types.
import kst = require('ko-sentence-transformers');

export async function consumerCjs(dir: string): Promise<number> {
  const model = await kst.SentenceTransformer.load(dir);
  const [a, b] = await model.encode(['가', '나']);
  const s: number = kst.util.cosSim(a, b)[0][0];
  const r: kst.StsResult = await kst.evaluateSts(model, [{ sentence1: '가', sentence2: '나', score: 0.5 }, { sentence1: '다', sentence2: '라', score: 1 }]);
  model.dispose();
  // @ts-expect-error batchSize is a number
  await model.encode(['x'], { batchSize: '8' });
  return s + r.manhattan.pearson;
}
