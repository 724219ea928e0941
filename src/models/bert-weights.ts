/**
 * BERT checkpoint description shared by the loader and the tests: config.json fields and the HF weight names
 * and shapes the encoder needs (checked in TS for friendly errors; the core re-checks every span).
 */
import type { NativeBertConfig, NativeTensorSpec } from '../binding';
import type { SafetensorsFile } from '../io/safetensors';
import { intField, readJsonObject } from './config';

/** Reads and validates the BERT fields of a Hugging Face config.json. */
export function readBertConfig(file: string): NativeBertConfig {
  const o = readJsonObject(file);
  const mt = o.model_type;
  if (mt !== undefined && mt !== 'bert') {
    throw new Error(`${file}: field "model_type" is "${String(mt)}"; only "bert" models are supported for now`);
  }
  const hidden_size = intField(file, o, 'hidden_size', 1);
  const num_attention_heads = intField(file, o, 'num_attention_heads', 1);
  if (hidden_size % num_attention_heads !== 0) {
    throw new Error(`${file}: field "hidden_size" (${hidden_size}) must be a multiple of "num_attention_heads" (${num_attention_heads})`);
  }
  const vocab_size = intField(file, o, 'vocab_size', 1);
  const eps = o.layer_norm_eps ?? 1e-12;
  if (typeof eps !== 'number' || !Number.isFinite(eps) || eps <= 0 || eps >= 1) {
    throw new Error(`${file}: field "layer_norm_eps" must be a number in (0, 1), got ${JSON.stringify(eps)}`);
  }
  const act = o.hidden_act ?? 'gelu';
  if (act !== 'gelu' && act !== 'gelu_new') {
    throw new Error(`${file}: field "hidden_act" must be "gelu" or "gelu_new", got ${JSON.stringify(act)}`);
  }
  const cfg: NativeBertConfig = {
    vocab_size,
    hidden_size,
    num_hidden_layers: intField(file, o, 'num_hidden_layers', 0),
    num_attention_heads,
    intermediate_size: intField(file, o, 'intermediate_size', 1),
    max_position_embeddings: intField(file, o, 'max_position_embeddings', 1),
    type_vocab_size: o.type_vocab_size === undefined ? 2 : intField(file, o, 'type_vocab_size', 1),
    pad_token_id: o.pad_token_id === undefined || o.pad_token_id === null ? 0 : intField(file, o, 'pad_token_id', 0, vocab_size - 1),
    layer_norm_eps: eps,
    hidden_act: act,
  };
  const pet = o.position_embedding_type;
  if (pet !== undefined && pet !== 'absolute') {
    throw new Error(`${file}: field "position_embedding_type" is ${JSON.stringify(pet)}; only "absolute" is supported`);
  }
  return cfg;
}

/** HF BertModel weight names and shapes the encoder needs (pooler.* is not used by sentence-transformers). */
export function expectedBertTensors(c: NativeBertConfig): Map<string, number[]> {
  const H = c.hidden_size;
  const I = c.intermediate_size;
  const m = new Map<string, number[]>();
  m.set('embeddings.word_embeddings.weight', [c.vocab_size, H]);
  m.set('embeddings.position_embeddings.weight', [c.max_position_embeddings, H]);
  m.set('embeddings.token_type_embeddings.weight', [c.type_vocab_size, H]);
  m.set('embeddings.LayerNorm.weight', [H]);
  m.set('embeddings.LayerNorm.bias', [H]);
  for (let i = 0; i < c.num_hidden_layers; i++) {
    const p = `encoder.layer.${i}.`;
    for (const n of ['query', 'key', 'value']) {
      m.set(`${p}attention.self.${n}.weight`, [H, H]);
      m.set(`${p}attention.self.${n}.bias`, [H]);
    }
    m.set(`${p}attention.output.dense.weight`, [H, H]);
    m.set(`${p}attention.output.dense.bias`, [H]);
    m.set(`${p}attention.output.LayerNorm.weight`, [H]);
    m.set(`${p}attention.output.LayerNorm.bias`, [H]);
    m.set(`${p}intermediate.dense.weight`, [I, H]);
    m.set(`${p}intermediate.dense.bias`, [I]);
    m.set(`${p}output.dense.weight`, [H, I]);
    m.set(`${p}output.dense.bias`, [H]);
    m.set(`${p}output.LayerNorm.weight`, [H]);
    m.set(`${p}output.LayerNorm.bias`, [H]);
  }
  return m;
}

/** HF key as the core expects it: no `bert.` prefix, old TF-style LayerNorm gamma/beta renamed like transformers does. */
export function canonicalTensorName(name: string): string {
  let n = name.startsWith('bert.') ? name.slice(5) : name;
  if (n.includes('LayerNorm.')) n = n.replace(/LayerNorm\.gamma$/, 'LayerNorm.weight').replace(/LayerNorm\.beta$/, 'LayerNorm.bias');
  return n;
}

/**
 * Maps a parsed safetensors file to the core's tensor list, checking presence and shapes of every tensor
 * the encoder needs. Errors name the file and the tensor.
 */
export function bertTensorSpecs(st: SafetensorsFile, cfg: NativeBertConfig): NativeTensorSpec[] {
  const byName = new Map<string, NativeTensorSpec>();
  for (const [raw, t] of st.tensors) {
    const name = canonicalTensorName(raw);
    if (byName.has(name)) throw new Error(`${st.path}: tensor "${raw}" appears twice (as "${name}")`);
    byName.set(name, { name, dtype: t.dtype, shape: t.shape, offset: t.offset, nbytes: t.nbytes });
  }
  const out: NativeTensorSpec[] = [];
  for (const [name, shape] of expectedBertTensors(cfg)) {
    const t = byName.get(name);
    if (!t) throw new Error(`${st.path}: missing tensor "${name}" (expected shape [${shape.join(', ')}])`);
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new Error(`${st.path}: tensor "${name}": expected shape [${shape.join(', ')}], got [${t.shape.join(', ')}]`);
    }
    out.push(t);
  }
  return out;
}
