/**
 * Normalize: like `sentence_transformers.models.Normalize` — L2-normalises each sentence embedding.
 * In a SentenceTransformer pipeline the normalisation runs in the native core (EncodeRequest.normalize);
 * `apply` is the same operation in JS for embeddings computed elsewhere.
 */
export class Normalize {
  /** Normalises in place (as torch.nn.functional.normalize: divide by max(||x||, 1e-12)) and returns the array. */
  static apply(v: Float32Array): Float32Array {
    let s = 0;
    for (let i = 0; i < v.length; i++) s += v[i] * v[i];
    const n = Math.max(Math.sqrt(s), 1e-12);
    for (let i = 0; i < v.length; i++) v[i] = v[i] / n;
    return v;
  }

  static load(_dir?: string): Normalize {
    return new Normalize();
  }
}
