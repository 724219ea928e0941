/**
 * Semantic search over a small Korean corpus (the seed project's README example).
 *
 *   npm run example [-- <model dir>]      (or KST_MODEL=<model dir> npm run example)
 *
 * With no argument it uses the package's default model (weights/default, a small Korean model trained offline on
 * KorNLU/KorSTS; see weights/README.md). Any sentence-transformers folder (or cached Hub id) can be passed instead.
 */
import { SentenceTransformer, util } from '../src';
import { DEMO_CORPUS, DEMO_QUERIES } from '../src/demo';

const corpus = DEMO_CORPUS;
const queries = DEMO_QUERIES;

async function main(): Promise<void> {
  const modelDir = process.argv[2] ?? process.env.KST_MODEL; // undefined: the default model
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
