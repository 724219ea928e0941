/** Test helper: writes small random-weight BERT checkpoints (config.json + model.safetensors) to temp dirs. */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { writeSafetensors, WriteTensor } from '../../src/io/safetensors';
import { EncoderConfig, expectedEncoderTensors } from '../../src/models/hf-transformer';

export function tinyConfig(over: Partial<EncoderConfig> = {}): EncoderConfig {
  return {
    model_type: 'bert',
    vocab_size: 50,
    hidden_size: 16,
    num_hidden_layers: 2,
    num_attention_heads: 2,
    intermediate_size: 24,
    max_position_embeddings: 64,
    type_vocab_size: 2,
    pad_token_id: 1,
    layer_norm_eps: 1e-12,
    hidden_act: 'gelu',
    ...over,
  };
}

/** Deterministic uniform(-scale, scale) values (mulberry32). */
export function randomF32(n: number, seed: number, scale = 0.2): Float32Array {
  let a = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    const u = ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    out[i] = (u * 2 - 1) * scale;
  }
  return out;
}

export function tmpDir(prefix = 'kst-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/**
 * Writes config.json + model.safetensors for cfg into dir. `mutate` may edit the tensor table before writing
 * (drop a tensor, change a shape, add a `bert.` prefix…).
 */
export function writeSyntheticBert(
  dir: string,
  cfg: EncoderConfig,
  mutate?: (t: Record<string, WriteTensor>) => Record<string, WriteTensor> | void,
): { dir: string; weights: string } {
  fs.mkdirSync(dir, { recursive: true });
  let tensors: Record<string, WriteTensor> = {};
  let seed = 1;
  for (const [name, shape] of expectedEncoderTensors(cfg)) {
    const n = shape.reduce((a, b) => a * b, 1);
    let data: Float32Array;
    if (name.endsWith('LayerNorm.weight')) {
      data = randomF32(n, seed++, 0.1).map((x) => 1 + x);
    } else {
      data = randomF32(n, seed++, name.endsWith('.bias') ? 0.1 : 0.2);
    }
    tensors[name] = { dtype: 'F32', shape, data };
  }
  if (mutate) tensors = mutate(tensors) ?? tensors;
  const weights = path.join(dir, 'model.safetensors');
  writeSafetensors(weights, tensors);
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ architectures: ['BertModel'], ...cfg }, null, 2));
  return { dir, weights };
}
