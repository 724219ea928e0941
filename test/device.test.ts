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
