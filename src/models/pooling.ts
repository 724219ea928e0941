/**
 * Pooling: like `sentence_transformers.models.Pooling`. The pooling itself runs in the native core; this
 * module holds the configuration and tells the core which modes to compute.
 *
 * Output order: several modes are concatenated in the order they were given (sentence-transformers 6
 * `pooling_mode=("mean", "cls")`), or cls, max, mean, mean_sqrt_len for the legacy boolean flags. The core
 * always concatenates in cls, max, mean, mean_sqrt_len order; `blockOrder()` says how to permute its blocks.
 */
import * as fs from 'fs';
import * as path from 'path';

import type { NativePoolingMode } from '../binding';
import { intField, readJsonObject } from './config';

/** Mode names as in sentence-transformers ('mean_sqrt_len' is accepted as a short form). */
export type PoolingModeName = 'mean' | 'cls' | 'max' | 'mean_sqrt_len_tokens' | 'mean_sqrt_len' | 'weightedmean' | 'lasttoken';

/** A pooling mode: the core computes cls / max / mean / mean_sqrt_len; weightedmean and lasttoken run in JS. */
export type PoolingMode = NativePoolingMode | 'weightedmean' | 'lasttoken';

export interface PoolingOptions {
  /** One mode or an ordered list of modes; overrides the boolean flags (as in sentence-transformers). */
  mode?: PoolingModeName | PoolingModeName[];
  poolingModeClsToken?: boolean;
  poolingModeMaxTokens?: boolean;
  /** Default true when no other flag and no `mode` is given. */
  poolingModeMeanTokens?: boolean;
  poolingModeMeanSqrtLenTokens?: boolean;
}

const CANONICAL: NativePoolingMode[] = ['cls', 'max', 'mean', 'mean_sqrt_len'];
const LEGACY_FLAGS: [string, PoolingModeName][] = [
  ['pooling_mode_cls_token', 'cls'],
  ['pooling_mode_max_tokens', 'max'],
  ['pooling_mode_mean_tokens', 'mean'],
  ['pooling_mode_mean_sqrt_len_tokens', 'mean_sqrt_len_tokens'],
  ['pooling_mode_weightedmean_tokens', 'weightedmean'],
  ['pooling_mode_lasttoken', 'lasttoken'],
];

function toNative(name: string, where: string): PoolingMode {
  switch (name) {
    case 'cls':
    case 'cls_token':
      return 'cls';
    case 'max':
    case 'max_tokens':
      return 'max';
    case 'mean':
    case 'mean_tokens':
      return 'mean';
    case 'mean_sqrt_len':
    case 'mean_sqrt_len_tokens':
      return 'mean_sqrt_len';
    case 'weightedmean':
    case 'weightedmean_tokens':
      return 'weightedmean';
    case 'lasttoken':
      return 'lasttoken';
  }
  throw new Error(`${where}: unknown pooling mode "${name}" (expected cls, max, mean, mean_sqrt_len_tokens, weightedmean or lasttoken)`);
}

export class Pooling {
  /** Modes in output (concatenation) order. */
  readonly poolingModes: readonly PoolingMode[];

  constructor(readonly wordEmbeddingDimension: number, options: PoolingOptions = {}) {
    if (!Number.isInteger(wordEmbeddingDimension) || wordEmbeddingDimension < 1) {
      throw new Error(`Pooling: wordEmbeddingDimension must be a positive integer, got ${wordEmbeddingDimension}`);
    }
    let modes: PoolingMode[];
    if (options.mode !== undefined) {
      const list = Array.isArray(options.mode) ? options.mode : [options.mode];
      modes = list.map((m) => toNative(String(m), 'Pooling'));
    } else {
      modes = [];
      if (options.poolingModeClsToken) modes.push('cls');
      if (options.poolingModeMaxTokens) modes.push('max');
      if (options.poolingModeMeanTokens ?? true) modes.push('mean');
      if (options.poolingModeMeanSqrtLenTokens) modes.push('mean_sqrt_len');
    }
    if (modes.length === 0) throw new Error('Pooling: at least one pooling mode must be enabled');
    if (new Set(modes).size !== modes.length) throw new Error(`Pooling: a mode is repeated in [${modes.join(', ')}]`);
    this.poolingModes = modes;
  }

  get poolingModeClsToken(): boolean {
    return this.poolingModes.includes('cls');
  }
  get poolingModeMaxTokens(): boolean {
    return this.poolingModes.includes('max');
  }
  get poolingModeMeanTokens(): boolean {
    return this.poolingModes.includes('mean');
  }
  get poolingModeMeanSqrtLenTokens(): boolean {
    return this.poolingModes.includes('mean_sqrt_len');
  }

  /** The modes for the core (it concatenates them in cls, max, mean, mean_sqrt_len order). */
  modes(): NativePoolingMode[] {
    return CANONICAL.filter((m) => this.poolingModes.includes(m));
  }

  /** True when a mode runs in JS (weightedmean, lasttoken): the core then returns token embeddings. */
  needsTokenEmbeddings(): boolean {
    return this.poolingModes.some((m) => m === 'weightedmean' || m === 'lasttoken');
  }

  /**
   * Pools one sentence's token embeddings (L × H, row-major) in the configured order, as
   * sentence-transformers' Pooling.forward does for an unpadded sequence (float64 sums, float32 result).
   * weightedmean: weights 1..L by position; lasttoken: the last token.
   */
  poolTokens(tok: Float32Array, L: number, H: number): Float32Array {
    const out = new Float32Array(H * this.poolingModes.length);
    this.poolingModes.forEach((m, k) => {
      const o = k * H;
      for (let i = 0; i < H; i++) {
        let v: number;
        switch (m) {
          case 'cls':
            v = tok[i];
            break;
          case 'lasttoken':
            v = tok[(L - 1) * H + i];
            break;
          case 'max':
            v = tok[i];
            for (let t = 1; t < L; t++) v = Math.max(v, tok[t * H + i]);
            break;
          case 'weightedmean': {
            let s = 0;
            for (let t = 0; t < L; t++) s += (t + 1) * tok[t * H + i];
            v = s / ((L * (L + 1)) / 2);
            break;
          }
          default: {
            let s = 0;
            for (let t = 0; t < L; t++) s += tok[t * H + i];
            v = m === 'mean' ? s / L : s / Math.sqrt(L);
          }
        }
        out[o + i] = v;
      }
    });
    return out;
  }

  /**
   * For output block i, the index of the core's block that holds it; null when the orders agree.
   * (e.g. modes ['mean', 'cls'] → core gives [cls, mean] → [1, 0]).
   */
  blockOrder(): number[] | null {
    const core = this.modes();
    const order = this.poolingModes.map((m) => core.indexOf(m as NativePoolingMode));
    return order.every((v, i) => v === i) ? null : order;
  }

  getSentenceEmbeddingDimension(): number {
    return this.wordEmbeddingDimension * this.poolingModes.length;
  }

  getConfigDict(): Record<string, unknown> {
    const names = this.poolingModes.map((m) => (m === 'mean_sqrt_len' ? 'mean_sqrt_len_tokens' : m));
    return { embedding_dimension: this.wordEmbeddingDimension, pooling_mode: names.length === 1 ? names[0] : names, include_prompt: true };
  }

  /**
   * Parses a Pooling config.json: the sentence-transformers 6 form (`embedding_dimension`, `pooling_mode`
   * string or list) or the legacy form (`word_embedding_dimension`, boolean `pooling_mode_*` flags).
   */
  static fromConfig(file: string, o: Record<string, unknown>): Pooling {
    const dimKey = o.embedding_dimension !== undefined ? 'embedding_dimension' : 'word_embedding_dimension';
    const dim = intField(file, o, dimKey, 1);
    const pm = o.pooling_mode;
    if (pm !== undefined && pm !== null) {
      const list = Array.isArray(pm) ? pm : [pm];
      if (list.length === 0 || list.some((m) => typeof m !== 'string')) {
        throw new Error(`${file}: field "pooling_mode" must be a mode name or a list of names, got ${JSON.stringify(pm)}`);
      }
      const modes = (list as string[]).map((m) => toNative(m, `${file}: field "pooling_mode"`));
      if (new Set(modes).size !== modes.length) throw new Error(`${file}: field "pooling_mode" repeats a mode`);
      return new Pooling(dim, { mode: modes });
    }
    const modes: PoolingModeName[] = [];
    for (const key of LEGACY_FLAGS.map(([k]) => k)) {
      const v = o[key];
      if (v === undefined || v === null) continue;
      if (typeof v !== 'boolean') throw new Error(`${file}: field "${key}" must be a boolean, got ${JSON.stringify(v)}`);
      if (!v) continue;
      modes.push(LEGACY_FLAGS.find(([k]) => k === key)![1]);
    }
    // sentence-transformers falls back to mean pooling when every legacy flag is false.
    if (modes.length === 0) modes.push('mean');
    return new Pooling(dim, { mode: modes });
  }

  /** Reads `<dir>/config.json` (a sentence-transformers 1_Pooling folder). */
  static load(dir: string): Pooling {
    const file = path.join(dir, 'config.json');
    if (!fs.existsSync(file)) throw new Error(`${file}: not found (Pooling module config)`);
    return Pooling.fromConfig(file, readJsonObject(file));
  }
}
