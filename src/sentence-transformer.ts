/**
 * SentenceTransformer: a pipeline of [word embedding model, Pooling, (Normalize)], like the Python class.
 * Tokenisation runs in TS; each batch's ids are packed end to end and encoded by one native call that also
 * pools and (optionally) normalises in the core, off the JS thread.
 */
import * as fs from 'fs';
import * as path from 'path';
import { SingleBar, Presets } from 'cli-progress';

import { findPackageRoot } from './binding';
import { isHubId, snapshotDownload } from './io/hub';
import { KoBertTransformer } from './models/transformer';
import { Transformer, TransformerOptions } from './models/hf-transformer';
import { Dense } from './models/dense';
import { Normalize } from './models/normalize';
import { Pooling } from './models/pooling';
import { readJsonFile } from './models/config';

/** The first module: a Transformer (KoBertTransformer is one with the KoBERT tokenizer). */
export type WordEmbeddingModule = Transformer;
export type SentenceTransformerModule = WordEmbeddingModule | Pooling | Dense | Normalize;

export interface EncodeOptions {
  batchSize?: number;
  normalizeEmbeddings?: boolean;
  showProgressBar?: boolean;
  /** 'sentence_embedding' (default) or 'token_embeddings' (one tokens × hidden row-major array per sentence). */
  outputValue?: 'sentence_embedding' | 'token_embeddings';
}

export type LoadOptions = TransformerOptions & {
  /** Hub ids only: the revision (branch, tag or commit name; default "main"). */
  revision?: string;
  /** Hub ids only: the Hugging Face hub cache folder (default HF_HUB_CACHE, $HF_HOME/hub, ~/.cache/huggingface/hub). */
  cacheDir?: string;
  /** Hub ids only: access token for private or gated models (default HF_TOKEN). */
  token?: string;
  /** Hub ids only: never download, use the cache only (also set by HF_HUB_OFFLINE=1). */
  localFilesOnly?: boolean;
  /** Hub ids only: download progress bars on stderr when it is a TTY (default true). */
  showProgress?: boolean;
};

/**
 * Module kinds by the class name at the end of modules.json's "type", for the sentence-transformers
 * namespaces (old `sentence_transformers.models.Pooling`, new `sentence_transformers.sentence_transformer.
 * modules.pooling.Pooling`, `sentence_transformers.base.modules.normalize.Normalize`, ...) and the seed's
 * `ko_sentence_transformers.models.KoBertTransformer`.
 */
type ModuleKind = 'transformer' | 'pooling' | 'normalize' | 'dense';
const MODULE_CLASSES: Record<string, ModuleKind> = {
  Transformer: 'transformer',
  KoBertTransformer: 'transformer',
  Pooling: 'pooling',
  Normalize: 'normalize',
  Dense: 'dense',
};

export function moduleKind(type: string): ModuleKind | undefined {
  const parts = type.split('.');
  const cls = parts[parts.length - 1];
  if (parts[0] !== 'sentence_transformers' && parts[0] !== 'ko_sentence_transformers') return undefined;
  if (!Object.prototype.hasOwnProperty.call(MODULE_CLASSES, cls)) return undefined;
  if (cls === 'KoBertTransformer' && parts[0] !== 'ko_sentence_transformers') return undefined;
  return MODULE_CLASSES[cls];
}

interface ModuleEntry {
  idx: number;
  name: string;
  path: string;
  type: string;
}

function readModulesJson(file: string): ModuleEntry[] {
  const v = readJsonFile(file);
  if (!Array.isArray(v)) throw new Error(`${file}: must hold a JSON array of modules`);
  const entries = v.map((e, i): ModuleEntry => {
    if (typeof e !== 'object' || e === null || Array.isArray(e)) throw new Error(`${file}: entry ${i} must be an object`);
    const o = e as Record<string, unknown>;
    if (typeof o.type !== 'string') throw new Error(`${file}: entry ${i}: field "type" must be a string`);
    if (typeof o.path !== 'string') throw new Error(`${file}: entry ${i}: field "path" must be a string`);
    const idx = typeof o.idx === 'number' ? o.idx : i;
    return { idx, name: typeof o.name === 'string' ? o.name : String(idx), path: o.path, type: o.type };
  });
  return entries.sort((a, b) => a.idx - b.idx);
}

function safeSubdir(root: string, rel: string, file: string): string {
  const p = path.resolve(root, rel);
  const r = path.resolve(root);
  if (p !== r && !p.startsWith(r + path.sep)) throw new Error(`${file}: module path "${rel}" leaves the model folder`);
  return p;
}

export class SentenceTransformer {
  readonly modules: SentenceTransformerModule[];
  private readonly word: WordEmbeddingModule;
  private readonly pooling: Pooling;
  private readonly dense: Dense[];
  private readonly normalizeModule: boolean;

  constructor({ modules }: { modules: SentenceTransformerModule[] }) {
    if (!Array.isArray(modules) || modules.length < 2) {
      throw new Error('SentenceTransformer: modules must be [wordEmbeddingModel, Pooling, (Dense...), (Normalize)]');
    }
    const [word, pooling, ...rest] = modules;
    if (!(word instanceof Transformer)) {
      throw new Error('SentenceTransformer: modules[0] must be a Transformer or KoBertTransformer');
    }
    if (!(pooling instanceof Pooling)) throw new Error('SentenceTransformer: modules[1] must be a Pooling module');
    if (pooling.wordEmbeddingDimension !== word.getWordEmbeddingDimension()) {
      throw new Error(
        `SentenceTransformer: Pooling expects dimension ${pooling.wordEmbeddingDimension} but the word model gives ${word.getWordEmbeddingDimension()}`,
      );
    }
    const dense: Dense[] = [];
    let dim = pooling.getSentenceEmbeddingDimension();
    let normalize = false;
    rest.forEach((m, i) => {
      if (m instanceof Dense && !normalize) {
        if (m.inFeatures !== dim) throw new Error(`SentenceTransformer: Dense module ${i + 2} expects ${m.inFeatures} inputs but gets ${dim}`);
        dim = m.outFeatures;
        dense.push(m);
      } else if (m instanceof Normalize && !normalize) {
        normalize = true;
      } else {
        throw new Error('SentenceTransformer: after Pooling only Dense modules and then one Normalize may follow');
      }
    });
    this.modules = modules;
    this.word = word;
    this.pooling = pooling;
    this.dense = dense;
    this.normalizeModule = normalize;
  }

  /**
   * Loads a local sentence-transformers folder (modules.json + module folders), or a plain BERT folder
   * (config.json, no modules.json) with mean pooling added, as sentence-transformers does. A Hugging Face id
   * ("org/name") that is not a local folder is resolved from the Hugging Face cache, downloading what is
   * missing from HF_ENDPOINT (see io/hub.ts; HF_HUB_OFFLINE=1 or localFilesOnly: cache only).
   * Without `dir`, loads the package's default model from weights/default.
   */
  static async load(dir?: string, options: LoadOptions = {}): Promise<SentenceTransformer> {
    if (dir !== undefined && !fs.existsSync(dir) && !path.isAbsolute(dir) && !dir.startsWith('.') && isHubId(dir)) {
      // Not a local folder: a Hub id ("org/name"), taken from the Hugging Face cache and downloaded into it
      // from HF_ENDPOINT where files are missing (never with HF_HUB_OFFLINE=1).
      dir = await snapshotDownload(dir, {
        revision: options.revision,
        cacheDir: options.cacheDir,
        token: options.token,
        localFilesOnly: options.localFilesOnly,
        showProgress: options.showProgress,
      });
    }
    if (dir === undefined) {
      dir = path.join(findPackageRoot(), 'weights', 'default');
      if (!fs.existsSync(dir)) {
        throw new Error(`no default model is shipped yet (${dir} does not exist): pass the path of a local sentence-transformers folder`);
      }
    }
    if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) {
      throw new Error(`${dir}: not a directory (pass a local model folder or a Hugging Face model id "org/name")`);
    }
    const modulesFile = path.join(dir, 'modules.json');
    if (!fs.existsSync(modulesFile)) {
      if (!fs.existsSync(path.join(dir, 'config.json'))) {
        throw new Error(`${dir}: neither modules.json nor config.json found: not a sentence-transformers or BERT folder`);
      }
      const word = await loadWordModule(dir, options);
      return new SentenceTransformer({ modules: [word, new Pooling(word.getWordEmbeddingDimension(), { mode: 'mean' })] });
    }

    const entries = readModulesJson(modulesFile);
    const modules: SentenceTransformerModule[] = [];
    try {
      for (const e of entries) {
        const sub = safeSubdir(dir, e.path, modulesFile);
        const kind = moduleKind(e.type);
        if (kind === 'transformer') {
          if (modules.length !== 0) throw new Error(`${modulesFile}: module "${e.name}" (${e.type}) must come first`);
          modules.push(e.type.endsWith('.KoBertTransformer') ? await KoBertTransformer.load(sub, options) : await loadWordModule(sub, options));
        } else if (kind === 'pooling') {
          modules.push(Pooling.load(sub));
        } else if (kind === 'normalize') {
          modules.push(Normalize.load(sub));
        } else if (kind === 'dense') {
          modules.push(Dense.load(sub));
        } else {
          throw new Error(
            `${modulesFile}: module "${e.name}" has type "${e.type}", which is not supported ` +
              '(supported: Transformer / KoBertTransformer, Pooling, Dense, Normalize)',
          );
        }
      }
      if (modules.length === 0) throw new Error(`${modulesFile}: no modules listed`);
      if (modules.length === 1 && isWord(modules[0])) {
        // sentence-transformers adds mean pooling when the folder lists only the word model.
        modules.push(new Pooling(modules[0].getWordEmbeddingDimension(), { mode: 'mean' }));
      }
      if (!isWord(modules[0])) {
        throw new Error(`${modulesFile}: the first module must be a Transformer / KoBertTransformer`);
      }
      return new SentenceTransformer({ modules });
    } catch (err) {
      for (const m of modules) if (isWord(m)) m.dispose();
      throw err;
    }
  }

  getSentenceEmbeddingDimension(): number {
    return this.dense.length ? this.dense[this.dense.length - 1].outFeatures : this.pooling.getSentenceEmbeddingDimension();
  }

  getMaxSeqLength(): number {
    return this.word.getMaxSeqLength();
  }

  get tokenizer() {
    return this.word.tokenizer;
  }

  /** Token ids per text, as the model sees them ([CLS] … [SEP], truncated to getMaxSeqLength()). */
  tokenize(texts: string[]): number[][] {
    return this.word.tokenize(texts);
  }

  encode(sentences: string, options?: EncodeOptions): Promise<Float32Array>;
  encode(sentences: string[], options?: EncodeOptions): Promise<Float32Array[]>;
  async encode(sentences: string | string[], options: EncodeOptions = {}): Promise<Float32Array | Float32Array[]> {
    const { batchSize = 32, normalizeEmbeddings = false, showProgressBar = false, outputValue = 'sentence_embedding' } = options;
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`batchSize must be a positive integer, got ${batchSize}`);
    if (outputValue !== 'sentence_embedding' && outputValue !== 'token_embeddings') {
      throw new RangeError(`outputValue must be 'sentence_embedding' or 'token_embeddings', got ${String(outputValue)}`);
    }
    const single = typeof sentences === 'string';
    const list: string[] = single ? [sentences as string] : (sentences as string[]);
    if (!Array.isArray(list)) throw new TypeError('sentences must be a string or an array of strings');
    for (let i = 0; i < list.length; i++) {
      if (typeof list[i] !== 'string') throw new TypeError(`sentences[${i}] must be a string, got ${typeof list[i]}`);
    }

    // Like sentence-transformers: longest first so each batch holds similar lengths; restore order after.
    const order = list.map((_, i) => i).sort((a, b) => list[b].length - list[a].length || a - b);
    const results: Float32Array[] = new Array(list.length);
    const tokenOutput = outputValue === 'token_embeddings';
    // Pooling modes the core lacks (weightedmean, lasttoken) and Dense modules run here in JS: the core then
    // returns token embeddings / un-normalised pooled rows, and normalisation happens last, in JS.
    const jsPool = !tokenOutput && this.pooling.needsTokenEmbeddings();
    const jsPost = !tokenOutput && (jsPool || this.dense.length > 0);
    const pooling = tokenOutput || jsPool ? ('token_embeddings' as const) : this.pooling.modes();
    const wantNormalize = !tokenOutput && (normalizeEmbeddings || this.normalizeModule);
    const normalize = wantNormalize && !jsPost;
    const dim = tokenOutput ? this.word.getWordEmbeddingDimension() : this.getSentenceEmbeddingDimension();
    const blockOrder = tokenOutput ? null : this.pooling.blockOrder();
    const H = this.word.getWordEmbeddingDimension();

    const bar = showProgressBar && list.length > 0 ? new SingleBar({ format: 'Batches |{bar}| {value}/{total}' }, Presets.shades_classic) : undefined;
    const nBatches = Math.ceil(list.length / batchSize);
    bar?.start(nBatches, 0);
    try {
      for (let start = 0; start < list.length; start += batchSize) {
        const idx = order.slice(start, start + batchSize);
        const tokenized = this.word.tokenize(idx.map((i) => list[i]));
        let total = 0;
        for (const t of tokenized) total += t.length;
        const ids = new Int32Array(total);
        const lengths = new Int32Array(tokenized.length);
        let p = 0;
        tokenized.forEach((t, b) => {
          lengths[b] = t.length;
          ids.set(t, p);
          p += t.length;
        });
        const out = await this.word.encodeIds(ids, lengths, { pooling, normalize });
        if (jsPost) {
          const pooledDim = this.pooling.getSentenceEmbeddingDimension();
          let tok = 0;
          for (let b = 0; b < idx.length; b++) {
            let v: Float32Array;
            if (jsPool) {
              v = this.pooling.poolTokens(new Float32Array(out.buffer, out.byteOffset + tok * H * 4, lengths[b] * H), lengths[b], H);
              tok += lengths[b];
            } else {
              const raw = new Float32Array(out.buffer, out.byteOffset + b * pooledDim * 4, pooledDim);
              v = new Float32Array(pooledDim);
              if (blockOrder) blockOrder.forEach((src, i) => v.set(raw.subarray(src * H, (src + 1) * H), i * H));
              else v.set(raw);
            }
            for (const d of this.dense) v = d.forward(v);
            if (wantNormalize) Normalize.apply(v);
            results[idx[b]] = v;
          }
          bar?.increment();
          continue;
        }
        let row = 0;
        for (let b = 0; b < idx.length; b++) {
          const rows = tokenOutput ? lengths[b] : 1;
          // Views into the batch's output buffer (no copy); each sentence gets its own window.
          // A view built with this realm's Float32Array (the addon's arrays belong to Node's main realm,
          // which differs under jest / vm contexts), sharing the batch's output buffer: no copy.
          const v = new Float32Array(out.buffer, out.byteOffset + row * dim * 4, rows * dim);
          if (blockOrder) {
            // The core concatenates modes as cls, max, mean, mean_sqrt_len; reorder to the configured order.
            const r = new Float32Array(dim);
            blockOrder.forEach((src, i) => r.set(v.subarray(src * H, (src + 1) * H), i * H));
            results[idx[b]] = r;
          } else {
            results[idx[b]] = v;
          }
          row += rows;
        }
        bar?.increment();
      }
    } finally {
      bar?.stop();
    }
    return single ? results[0] : results;
  }

  /** Frees the native model (after runs in flight finish). */
  dispose(): void {
    this.word.dispose();
  }
}

function isWord(m: unknown): m is WordEmbeddingModule {
  return m instanceof Transformer;
}

/**
 * The word-embedding module of a folder: KoBertTransformer for KoBERT folders (SentencePiece .model + vocab.txt,
 * no tokenizer.json or spiece.model), else Transformer with the tokenizer loadTokenizer picks.
 */
async function loadWordModule(dir: string, options: LoadOptions): Promise<WordEmbeddingModule> {
  const hasKoBert = fs.existsSync(path.join(dir, 'vocab.txt')) && fs.readdirSync(dir).some((f) => f.endsWith('.model') && f !== 'spiece.model');
  const hasOther = fs.existsSync(path.join(dir, 'tokenizer.json')) || fs.existsSync(path.join(dir, 'spiece.model'));
  if (hasKoBert && !hasOther) return KoBertTransformer.load(dir, options);
  return Transformer.load(dir, options);
}
