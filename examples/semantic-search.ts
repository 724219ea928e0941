/**
 * Semantic search over a small Korean corpus (the seed project's README example).
 *
 *   npm run example [-- <model dir>]      (or KST_MODEL=<model dir> npm run example)
 *
 * The default model, test/fixtures/kobert-tiny, has random weights: it shows the API working end to end,
 * but its rankings carry no meaning. Pass a trained sentence-transformers folder for real results.
 */
import * as path from 'path';

import { SentenceTransformer, util } from '../src';
import { DEMO_CORPUS, DEMO_QUERIES } from '../src/demo';

const corpus = DEMO_CORPUS;
const queries = DEMO_QUERIES;

async function main(): Promise<void> {
  // Compiled to dist/examples/: the package root is two levels up.
  const root = path.resolve(__dirname, '..', '..');
  const defaultDir = path.join(root, 'test', 'fixtures', 'kobert-tiny');
  const modelDir = process.argv[2] ?? process.env.KST_MODEL ?? defaultDir;
  if (path.resolve(modelDir) === defaultDir) {
    console.log('NOTE: using test/fixtures/kobert-tiny, a RANDOM-WEIGHT test model: the scores below are not meaningful.');
    console.log('      Pass a trained sentence-transformers folder: npm run example -- <model dir>\n');
  }
  const embedder = await SentenceTransformer.load(modelDir);
  try {
    const corpusEmbeddings = await embedder.encode(corpus);
    const queryEmbeddings = await embedder.encode(queries);

    // Find the closest 5 sentences of the corpus for each query sentence based on cosine similarity
    const topK = 5;
    const hits = util.semanticSearch(queryEmbeddings, corpusEmbeddings, { topK });
    queries.forEach((query, q) => {
      console.log('\n\n======================\n\n');
      console.log('Query:', query);
      console.log(`\nTop ${topK} most similar sentences in corpus:`);
      for (const hit of hits[q]) {
        console.log(corpus[hit.corpusId], `(Score: ${hit.score.toFixed(4)})`);
      }
    });
  } finally {
    embedder.dispose();
  }
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
});
