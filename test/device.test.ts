// Device selection through the public API. This machine (and CI) has no GPU: 'cuda' must fail with a clear
// error, 'auto' must fall back to the CPU and say why, and the default stays on the CPU.
import * as path from 'path';

import { KoBertTransformer } from '../src';

const DIR = path.join(__dirname, 'fixtures/kobert-tiny/0_KoBertTransformer');
const hasGpu = !!process.env.KST_TEST_HAS_GPU;

describe('device option', () => {
  test('default is the CPU', async () => {
    const word = await KoBertTransformer.load(DIR);
    try {
      expect(word.info().device).toBe('cpu');
      expect(word.info().deviceName).toBe('');
      expect(word.info().deviceNote).toBeUndefined();
    } finally {
      word.dispose();
    }
  });

  (hasGpu ? test.skip : test)("'cuda' without a usable GPU is a clear error", async () => {
    await expect(KoBertTransformer.load(DIR, { device: 'cuda' })).rejects.toThrow(/cuda|CUDA|GPU/);
  });

  (hasGpu ? test.skip : test)("'auto' without a usable GPU runs on the CPU and says why", async () => {
    const word = await KoBertTransformer.load(DIR, { device: 'auto' });
    try {
      const info = word.info();
      expect(info.device).toBe('cpu');
      expect(typeof info.deviceNote).toBe('string');
      expect((info.deviceNote ?? '').length).toBeGreaterThan(0);
      const out = await word.encodeIds(new Int32Array([2, 100, 3]), new Int32Array([3]), { pooling: ['mean'] });
      expect(out.length).toBe(64);
      expect(Array.from(out).every(Number.isFinite)).toBe(true);
    } finally {
      word.dispose();
    }
  });

  test('bad device and precision values are errors naming the option', async () => {
    await expect(KoBertTransformer.load(DIR, { device: 'tpu' })).rejects.toThrow(/device/);
    await expect(KoBertTransformer.load(DIR, { device: 'auto', cudaPrecision: 'fp8' as never })).rejects.toThrow(/cudaPrecision/);
  });
});

describe('precision option', () => {
  const cpuHasBf16 = (() => {
    try {
      const flags = /^flags\s*:(.*)$/m.exec(require('fs').readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? '';
      return / avx512_bf16( |$)/.test(flags) && / avx512bw( |$)/.test(flags);
    } catch {
      return false;
    }
  })();

  test("default fp32; 'bf16' where the CPU has it (else fp32), close to fp32", async () => {
    const fp32 = await KoBertTransformer.load(DIR, { isa: 'auto' });
    const bf16 = await KoBertTransformer.load(DIR, { isa: 'auto', precision: 'bf16' });
    try {
      expect(fp32.info().precision).toBe('fp32');
      const scalar = process.env.KST_ISA === 'scalar' || process.env.KST_ISA === 'avx2';
      expect(bf16.info().precision).toBe(cpuHasBf16 && !scalar ? 'bf16' : 'fp32');
      const ids = new Int32Array([2, 4958, 6855, 2046, 7088, 1050, 7843, 54, 3]);
      const len = new Int32Array([ids.length]);
      const a = await fp32.encodeIds(ids, len, { pooling: ['mean'] });
      const b = await bf16.encodeIds(ids, len, { pooling: ['mean'] });
      let dot = 0, na = 0, nb = 0;
      for (let i = 0; i < a.length; i++) {
        dot += a[i] * b[i];
        na += a[i] * a[i];
        nb += b[i] * b[i];
      }
      expect(dot / Math.sqrt(na * nb)).toBeGreaterThanOrEqual(0.999);
    } finally {
      fp32.dispose();
      bf16.dispose();
    }
  });

  test('an unknown precision is an error naming the option', async () => {
    await expect(KoBertTransformer.load(DIR, { precision: 'fp16' as never })).rejects.toThrow(/precision/);
  });
});
