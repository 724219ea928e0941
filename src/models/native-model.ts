/**
 * Opens the native model for a word-embedding module (KoBertTransformer, Transformer): the one place where the
 * run-time options (threads, instruction set, device) are turned into the binding's options, with their
 * environment-variable defaults.
 */
import { loadBinding, NativeBertConfig, NativeModel, NativeModelOptions, NativeTensorSpec } from '../binding';

export interface RuntimeOptions {
  /** Core threads (0 / absent = all available cores). */
  threads?: number;
  /** 'auto' | 'scalar' | 'avx2' | 'avx512' (can only lower the detected ISA). Default: env KST_ISA or auto. */
  isa?: string;
  /**
   * CPU weight precision: 'fp32' (default), 'bf16' (opt-in; needs AVX512-BF16, else fp32) or 'int8' (opt-in; weights
   * quantised per output channel at load, activations per token; needs AVX512-VNNI or AVX-VNNI, else fp32).
   * Default: env KST_PRECISION.
   */
  precision?: 'fp32' | 'bf16' | 'int8';
  /** 'cpu' | 'cuda' | 'cuda:N' | 'auto'. Default: env KST_DEVICE or 'cpu'. 'cuda' fails clearly without a GPU. */
  device?: string;
  /** GPU operand type, 'fp16' (default) or 'bf16'; accumulation is fp32. */
  cudaPrecision?: 'fp16' | 'bf16' | 'auto';
}

export function openNativeModel(
  weightsFile: string,
  config: NativeBertConfig,
  tensors: NativeTensorSpec[],
  options: RuntimeOptions,
): NativeModel {
  const isa = options.isa ?? process.env.KST_ISA;
  const device = options.device ?? process.env.KST_DEVICE;
  const o: NativeModelOptions = { path: weightsFile, config, tensors };
  if (options.threads !== undefined) o.threads = options.threads;
  if (isa !== undefined && isa !== '') o.isa = isa;
  if (device !== undefined && device !== '') o.device = device;
  if (options.precision !== undefined) o.precision = options.precision;
  if (options.cudaPrecision !== undefined) o.cudaPrecision = options.cudaPrecision;
  return new (loadBinding().Model)(o);
}
