/**
 * Runs the native op tests (test/test_ops.cpp, built by cmake-js next to the addon) so `npm test` covers
 * every SIMD kernel against the scalar reference. Fails when the executable exits non-zero.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

const ROOT = path.resolve(__dirname, '..');
const EXE = process.platform === 'win32' ? 'test_ops.exe' : 'test_ops';
const CANDIDATES = [
  path.join(ROOT, 'build', 'Release', EXE),
  path.join(ROOT, 'build', EXE),
  path.join(ROOT, 'build', 'Debug', EXE),
];

test('native op tests (test_ops) pass', () => {
  const exe = CANDIDATES.find((p) => fs.existsSync(p));
  if (!exe) {
    throw new Error(`test_ops executable not found (tried ${CANDIDATES.join(', ')}): run \`npm run build:native\``);
  }
  const r = spawnSync(exe, [], { cwd: ROOT, encoding: 'utf8', timeout: 540000, maxBuffer: 64 << 20 });
  if (r.error) throw r.error;
  const out = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  const lines = out.trimEnd().split('\n');
  const failures = lines.filter((l) => /^(FAIL|not ok)\b/i.test(l.trim()));
  console.log(`${path.relative(ROOT, exe)} exit ${r.status}${r.signal ? ` (signal ${r.signal})` : ''}\n` + [...failures.slice(0, 40), ...lines.slice(-5)].join('\n'));
  expect(r.signal).toBeNull();
  expect(r.status).toBe(0);
});
