/**
 * Similarity helpers, like `sentence_transformers.util`: cosSim, dotScore, semanticSearch.
 * Accept one vector or a list of vectors (Float32Array / number[]); return a matrix as number[][].
 */
export type Vector = Float32Array | Float64Array | number[];
export type Vectors = Vector | Vector[];

/** A numeric typed array (any realm: ArrayBuffer.isView works across vm contexts) or a non-empty number[]. */
function isVector(v: unknown): v is Vector {
  if (ArrayBuffer.isView(v)) return !(v instanceof DataView) && typeof (v as unknown as { length?: unknown }).length === 'number';
  return Array.isArray(v) && v.length > 0 && typeof v[0] === 'number';
}

/** One vector → [vector]; a list of vectors as is; [] is an empty list. */
function toList(x: Vectors, name: string): Vector[] {
  if (isVector(x)) return [x];
  if (!Array.isArray(x)) throw new TypeError(`${name} must be a vector or an array of vectors`);
  for (let i = 0; i < x.length; i++) {
    if (!isVector(x[i])) throw new TypeError(`${name}[${i}] must be a vector (Float32Array or number[])`);
  }
  return x as Vector[];
}

function checkDims(a: Vector[], b: Vector[]): void {
  const d = a.length ? a[0].length : b.length ? b[0].length : 0;
  for (const [name, list] of [['a', a], ['b', b]] as const) {
    list.forEach((v, i) => {
      if (v.length !== d) throw new RangeError(`${name}[${i}] has dimension ${v.length}, expected ${d}`);
    });
  }
}

function dot(x: Vector, y: Vector): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i] * y[i];
  return s;
}

function norm(x: Vector): number {
  return Math.sqrt(dot(x, x));
}

/** Dot product of every a[i] with every b[j]: result[i][j]. */
export function dotScore(a: Vectors, b: Vectors): number[][] {
  const A = toList(a, 'a');
  const B = toList(b, 'b');
  checkDims(A, B);
  return A.map((x) => B.map((y) => dot(x, y)));
}

/** Cosine similarity of every a[i] with every b[j] (norms clamped at 1e-12 like torch normalize). */
export function cosSim(a: Vectors, b: Vectors): number[][] {
  const A = toList(a, 'a');
  const B = toList(b, 'b');
  checkDims(A, B);
  const na = A.map((x) => Math.max(norm(x), 1e-12));
  const nb = B.map((y) => Math.max(norm(y), 1e-12));
  return A.map((x, i) => B.map((y, j) => dot(x, y) / (na[i] * nb[j])));
}

export interface SearchHit {
  corpusId: number;
  score: number;
}

export interface SemanticSearchOptions {
  topK?: number;
  queryChunkSize?: number;
  corpusChunkSize?: number;
  scoreFunction?: (a: Vector[], b: Vector[]) => number[][];
}

/**
 * For each query, the topK corpus entries by score (cosine by default), best first, like util.semantic_search.
 * Ties keep the lower corpus id first.
 */
export function semanticSearch(queryEmbeddings: Vectors, corpusEmbeddings: Vectors, options: SemanticSearchOptions = {}): SearchHit[][] {
  const { topK = 10, queryChunkSize = 100, corpusChunkSize = 500000, scoreFunction = cosSim } = options;
  for (const [k, v] of [['topK', topK], ['queryChunkSize', queryChunkSize], ['corpusChunkSize', corpusChunkSize]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new RangeError(`${k} must be a positive integer, got ${v}`);
  }
  const Q = toList(queryEmbeddings, 'queryEmbeddings');
  const C = toList(corpusEmbeddings, 'corpusEmbeddings');
  const results: SearchHit[][] = Q.map(() => []);
  for (let qs = 0; qs < Q.length; qs += queryChunkSize) {
    const qChunk = Q.slice(qs, qs + queryChunkSize);
    for (let cs = 0; cs < C.length; cs += corpusChunkSize) {
      const cChunk = C.slice(cs, cs + corpusChunkSize);
      const scores = scoreFunction(qChunk, cChunk);
      scores.forEach((row, qi) => {
        const hits = results[qs + qi];
        row.forEach((score, ci) => hits.push({ corpusId: cs + ci, score }));
      });
    }
  }
  const cmp = (x: SearchHit, y: SearchHit) => y.score - x.score || x.corpusId - y.corpusId;
  return results.map((hits) => hits.sort(cmp).slice(0, topK));
}
