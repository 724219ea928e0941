/**
 * Dense: like `sentence_transformers.models.Dense` — y = activation(W x + b) on each sentence embedding.
 * Folder layout (2_Dense/): config.json {in_features, out_features, bias, activation_function} and the weights
 * `linear.weight` [out, in] / `linear.bias` [out] in model.safetensors or pytorch_model.bin.
 * Runs in JS on the pooled rows (out × in multiply-adds per sentence), accumulating in float64.
 */
import * as fs from 'fs';
import * as path from 'path';

import { readPytorchCheckpointSync, readPytorchTensorBytes } from '../io/pytorch';
import { readSafetensorsSync } from '../io/safetensors';
import { intField, optionalBool, readJsonObject } from './config';

export type DenseActivation = 'tanh' | 'identity' | 'relu' | 'sigmoid' | 'gelu';

const ACTIVATIONS: Record<string, DenseActivation> = {
  'torch.nn.modules.activation.Tanh': 'tanh',
  'torch.nn.modules.linear.Identity': 'identity',
  'torch.nn.modules.activation.ReLU': 'relu',
  'torch.nn.modules.activation.Sigmoid': 'sigmoid',
  'torch.nn.modules.activation.GELU': 'gelu',
};

function erf(x: number): number {
  // Abramowitz–Stegun 7.1.26 is too coarse for 1e-7; use the series / continued fraction via Math functions.
  const t = 1 / (1 + 0.5 * Math.abs(x));
  const y =
    1 -
    t *
      Math.exp(
        -x * x - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 +
          t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
      );
  return x >= 0 ? y : -y;
}

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

function toFloat32(bytes: Buffer, dtype: string): Float32Array {
  if (dtype === 'F32') {
    const out = new Float32Array(bytes.length / 4);
    for (let i = 0; i < out.length; i++) out[i] = bytes.readFloatLE(4 * i);
    return out;
  }
  const out = new Float32Array(bytes.length / 2);
  for (let i = 0; i < out.length; i++) {
    const h = bytes.readUInt16LE(2 * i);
    out[i] = dtype === 'F16' ? halfToFloat(h) : new Float32Array(new Uint32Array([h << 16]).buffer)[0];
  }
  return out;
}

/** Reads named float tensors from <dir>/model.safetensors or <dir>/pytorch_model.bin. */
export function readFloatTensors(dir: string, names: Map<string, number[]>): Map<string, Float32Array> {
  const st = path.join(dir, 'model.safetensors');
  const bin = path.join(dir, 'pytorch_model.bin');
  const out = new Map<string, Float32Array>();
  const check = (file: string, name: string, shape: number[] | undefined, want: number[]): void => {
    if (!shape) throw new Error(`${file}: missing tensor "${name}" (expected shape [${want.join(', ')}])`);
    if (shape.length !== want.length || shape.some((d, i) => d !== want[i])) {
      throw new Error(`${file}: tensor "${name}": expected shape [${want.join(', ')}], got [${shape.join(', ')}]`);
    }
  };
  if (fs.existsSync(st)) {
    const f = readSafetensorsSync(st);
    const fd = fs.openSync(st, 'r');
    try {
      for (const [name, want] of names) {
        const t = f.tensors.get(name);
        check(st, name, t?.shape, want);
        const b = Buffer.alloc(t!.nbytes);
        fs.readSync(fd, b, 0, t!.nbytes, t!.offset);
        out.set(name, toFloat32(b, t!.dtype));
      }
    } finally {
      fs.closeSync(fd);
    }
    return out;
  }
  if (fs.existsSync(bin)) {
    const ck = readPytorchCheckpointSync(bin);
    for (const [name, want] of names) {
      const t = ck.tensors.get(name);
      check(bin, name, t?.shape, want);
      if (t!.dtype === 'I64') throw new Error(`${bin}: tensor "${name}" is int64, expected a float tensor`);
      out.set(name, toFloat32(readPytorchTensorBytes(ck, name), t!.dtype));
    }
    return out;
  }
  throw new Error(`${dir}: neither model.safetensors nor pytorch_model.bin found`);
}

export class Dense {
  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    readonly weight: Float32Array,
    readonly bias: Float32Array | null,
    readonly activation: DenseActivation,
  ) {
    if (weight.length !== inFeatures * outFeatures) throw new Error(`Dense: weight has ${weight.length} values, expected ${outFeatures} × ${inFeatures}`);
    if (bias && bias.length !== outFeatures) throw new Error(`Dense: bias has ${bias.length} values, expected ${outFeatures}`);
  }

  static load(dir: string): Dense {
    const file = path.join(dir, 'config.json');
    if (!fs.existsSync(file)) throw new Error(`${file}: not found (Dense module config)`);
    const o = readJsonObject(file);
    const inF = intField(file, o, 'in_features', 1);
    const outF = intField(file, o, 'out_features', 1);
    const hasBias = optionalBool(file, o, 'bias', true);
    if (o.use_residual === true) throw new Error(`${file}: field "use_residual" true is not supported`);
    const actName = o.activation_function ?? 'torch.nn.modules.activation.Tanh';
    if (typeof actName !== 'string' || !(actName in ACTIVATIONS)) {
      throw new Error(`${file}: field "activation_function" ${JSON.stringify(actName)} is not supported (supported: ${Object.keys(ACTIVATIONS).join(', ')})`);
    }
    const names = new Map<string, number[]>([['linear.weight', [outF, inF]]]);
    if (hasBias) names.set('linear.bias', [outF]);
    const t = readFloatTensors(dir, names);
    return new Dense(inF, outF, t.get('linear.weight')!, hasBias ? t.get('linear.bias')! : null, ACTIVATIONS[actName]);
  }

  getSentenceEmbeddingDimension(): number {
    return this.outFeatures;
  }

  forward(x: Float32Array): Float32Array {
    if (x.length !== this.inFeatures) throw new Error(`Dense: input has ${x.length} values, expected ${this.inFeatures}`);
    const { inFeatures: K, outFeatures: N, weight: W, bias: b } = this;
    const y = new Float32Array(N);
    for (let j = 0; j < N; j++) {
      let s = b ? b[j] : 0;
      const row = j * K;
      for (let i = 0; i < K; i++) s += W[row + i] * x[i];
      const v = Math.fround(s);
      switch (this.activation) {
        case 'tanh':
          y[j] = Math.tanh(v);
          break;
        case 'relu':
          y[j] = v > 0 ? v : 0;
          break;
        case 'sigmoid':
          y[j] = 1 / (1 + Math.exp(-v));
          break;
        case 'gelu':
          y[j] = 0.5 * v * (1 + erf(v / Math.SQRT2));
          break;
        default:
          y[j] = v;
      }
    }
    return y;
  }
}
