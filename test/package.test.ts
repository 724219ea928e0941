/**
 * The npm package as a user gets it (issue 7): `npm pack`, then install the tarball into a fresh folder with
 * no network (`--offline`: dependencies come from the npm cache that `npm ci` filled), no install scripts, and
 * no build tools on PATH (PATH holds only node, npm, npx and sh: no cmake, no g++, no nvcc). Then `require` and
 * `import` it, embed two sentences, run `npx ko-sbert search` / `info`, check that the addon came from
 * prebuilds/ (not a local build), that KST_ISA=scalar runs the scalar kernels, and type-check consumer files
 * against the installed types.
 *
 * Needs the build (`npm test` runs `npm run build`, whose npm pre-hook runs `npm run prebuild`); builds what is
 * missing. Skipped, loudly, only when npm itself cannot be found.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { spawnSync, SpawnSyncReturns } from 'child_process';

import { addonCandidates } from '../src/binding';
import { defaultModelDir } from '../src/cli';

const ROOT = path.resolve(__dirname, '..');
const FIXTURE_MODEL = path.join(ROOT, 'test', 'fixtures', 'kobert-tiny');
const PKG = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { name: string; version: string };

/** npm's CLI script, next to the node binary (the usual layout) or wherever `npm` on PATH points. */
function findNpmCli(): string | undefined {
  const candidates = [
    path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js'),
    path.join(path.dirname(process.execPath), 'node_modules', 'npm', 'bin', 'npm-cli.js'),
  ];
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const p = path.join(dir, 'npm');
    try {
      candidates.push(path.join(path.dirname(fs.realpathSync(p)), 'npm-cli.js'));
    } catch {
      // not here
    }
  }
  return candidates.find((c) => fs.existsSync(c));
}

const NPM_CLI = findNpmCli();
if (!NPM_CLI) {
  console.warn('package.test.ts: SKIPPED — npm (npm-cli.js) was not found next to node or on PATH, so the package cannot be packed here');
}
const describeIfNpm = NPM_CLI ? describe : describe.skip;

function run(cmd: string, args: string[], opts: { cwd: string; env?: NodeJS.ProcessEnv; input?: string; timeout?: number }): SpawnSyncReturns<string> {
  const r = spawnSync(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, input: opts.input, encoding: 'utf8', timeout: opts.timeout ?? 300000, maxBuffer: 64 << 20 });
  if (r.error) throw r.error;
  return r;
}

function ok(r: SpawnSyncReturns<string>, what: string): string {
  if (r.status !== 0) throw new Error(`${what} exited with ${r.status}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r.stdout;
}

describe('loader order (src/binding.ts addonCandidates)', () => {
  const ngb = require('node-gyp-build');
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kst-loader-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));
  const touch = (rel: string, mtime: number): string => {
    const p = path.join(dir, rel);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, '');
    fs.utimesSync(p, mtime, mtime);
    return p;
  };
  const tuple = `${process.platform}-${process.arch}`;

  test('installed package: the prebuild first, a local build only as fallback', () => {
    const pre = touch(`prebuilds/${tuple}/ko-sentence-transformers.node`, 1000);
    const local = touch('build/Release/kst.node', 2000); // newer, but no sources here: still second
    expect(addonCandidates(dir, ngb)).toEqual([pre, local]);
  });

  test('no prebuild for this platform: the local build', () => {
    touch('prebuilds/sunos-mips/ko-sentence-transformers.node', 1000);
    const local = touch('build/Release/kst.node', 500);
    expect(addonCandidates(dir, ngb)).toEqual([local]);
  });

  test('source checkout: a local build newer than the prebuild wins; an older one does not', () => {
    touch('CMakeLists.txt', 1);
    fs.mkdirSync(path.join(dir, 'native'));
    const pre = touch(`prebuilds/${tuple}/ko-sentence-transformers.node`, 1000);
    const local = touch('build/Release/kst.node', 2000);
    expect(addonCandidates(dir, ngb)).toEqual([local, pre]);
    fs.utimesSync(local, 10, 10);
    expect(addonCandidates(dir, ngb)).toEqual([pre, local]);
  });
});

describeIfNpm('npm pack → offline install with no build tools → require, import, npx ko-sbert', () => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'kst-package-'));
  const app = path.join(work, 'app');
  const bin = path.join(work, 'bin');
  let tarball = '';
  let files: string[] = [];
  let packedSize = 0;
  let unpackedSize = 0;
  let env: NodeJS.ProcessEnv;
  let modelArgs: string[] = [];
  let modelDirForJs = 'undefined';

  afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

  beforeAll(() => {
    // The build `npm test` made (pretest); make what is missing when jest runs alone.
    const prebuildDir = path.join(ROOT, 'prebuilds', `${process.platform}-${process.arch}`);
    if (!fs.existsSync(prebuildDir) || !fs.readdirSync(prebuildDir).some((f) => f.endsWith('.node'))) {
      ok(run(process.execPath, [path.join(ROOT, 'scripts', 'prebuild.js')], { cwd: ROOT, timeout: 900000 }), 'npm run prebuild');
    }
    if (!fs.existsSync(path.join(ROOT, 'dist', 'src', 'cli.js')) || !fs.existsSync(path.join(ROOT, 'dist', 'esm', 'index.mjs'))) {
      ok(run(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.build.json'], { cwd: ROOT }), 'tsc');
      ok(run(process.execPath, [path.join(ROOT, 'scripts', 'write-esm.js')], { cwd: ROOT }), 'write-esm');
    }

    const packOut = ok(
      run(process.execPath, [NPM_CLI!, 'pack', '--json', '--ignore-scripts', '--pack-destination', work], { cwd: ROOT }),
      'npm pack',
    );
    const info = JSON.parse(packOut.slice(packOut.indexOf('['))) as Array<{ filename: string; size: number; unpackedSize: number; files: { path: string }[] }>;
    tarball = path.join(work, info[0].filename);
    files = info[0].files.map((f) => f.path);
    packedSize = info[0].size;
    unpackedSize = info[0].unpackedSize;
    console.log(`npm pack: ${info[0].filename} ${(packedSize / 1e6).toFixed(2)} MB packed, ${(unpackedSize / 1e6).toFixed(2)} MB unpacked, ${files.length} files`);

    // PATH with only node, npm, npx and sh (npx runs bins through sh): no compiler, cmake or nvcc.
    fs.mkdirSync(bin);
    fs.symlinkSync(process.execPath, path.join(bin, 'node'));
    fs.symlinkSync(NPM_CLI!, path.join(bin, 'npm'));
    fs.symlinkSync(path.join(path.dirname(NPM_CLI!), 'npx-cli.js'), path.join(bin, 'npx'));
    fs.symlinkSync('/bin/sh', path.join(bin, 'sh'));
    env = { HOME: process.env.HOME ?? os.homedir(), PATH: bin, npm_config_update_notifier: 'false', npm_config_audit: 'false', npm_config_fund: 'false' };
    if (process.env.npm_config_cache) env.npm_config_cache = process.env.npm_config_cache;

    fs.mkdirSync(app);
    fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'kst-consumer', version: '1.0.0', private: true }));
    // --offline: every dependency from the npm cache. A cache filled only by `npm ci` holds the registry's
    // abbreviated metadata, and npm's install of a tarball asks for the full one for some packages
    // (ENOTCACHED); then, and only then, --prefer-offline fetches just that metadata (tarballs still come from
    // the cache). Which one ran is printed.
    const args = ['install', '--ignore-scripts', '--no-audit', '--no-fund', '--no-package-lock', tarball];
    const offline = run(bin + '/npm', ['--offline', ...args], { cwd: app, env });
    if (offline.status === 0) {
      console.log('package: installed with npm install --offline --ignore-scripts (no network)');
    } else if (/ENOTCACHED/.test(offline.stderr)) {
      console.warn(`package: --offline missed registry metadata in the npm cache (${(/request to (\S+)/.exec(offline.stderr) ?? ['', '?'])[1]}); retrying with --prefer-offline`);
      ok(run(bin + '/npm', ['--prefer-offline', ...args], { cwd: app, env }), 'npm install --prefer-offline (tarball)');
    } else {
      ok(offline, 'npm install --offline (tarball)');
    }

    // The shipped default model when the package has one; otherwise the test fixture, passed explicitly.
    const shipsModel = files.some((f) => f.startsWith('weights/') && f.endsWith('modules.json'));
    modelArgs = shipsModel ? [] : ['--model', FIXTURE_MODEL];
    modelDirForJs = shipsModel ? 'undefined' : JSON.stringify(FIXTURE_MODEL);
  });

  test('the tarball holds the JS (CJS + ESM), types, the prebuilt addon, README and LICENSE — nothing else; ≤ 40 MB', () => {
    const must = ['package.json', 'README.md', 'LICENSE', 'dist/src/index.js', 'dist/src/index.d.ts', 'dist/src/cli.js', 'dist/esm/index.mjs', 'dist/esm/index.d.mts'];
    for (const f of must) expect(files).toContain(f);
    expect(files.filter((f) => new RegExp(`^prebuilds/${process.platform}-${process.arch}/[^/]+\\.node$`).test(f)).length).toBeGreaterThanOrEqual(1);
    const stray = files.filter(
      (f) =>
        !/^(package\.json|README\.md|LICENSE)$/.test(f) &&
        !/^dist\/(src|esm)\/.+\.(js|d\.ts|mjs|d\.mts)$/.test(f) &&
        !/^prebuilds\/[^/]+\/[^/]+\.(node|so(\.\d+)*)$/.test(f) &&
        !/^weights\/[^/]+\/.+/.test(f),
    );
    expect(stray).toEqual([]);
    expect(files.filter((f) => /^(test|native|src|scripts|bench|examples|build)\//.test(f) || f.endsWith('.map'))).toEqual([]);
    // weights/: model folders only, no training scripts.
    expect(files.filter((f) => f.startsWith('weights/') && /\.(py|sh|ipynb)$/.test(f))).toEqual([]);
    expect(packedSize).toBeLessThanOrEqual(40 * 1024 * 1024);
  });

  test('the default model the checkout has (weights/) is in the tarball, complete', () => {
    const dir = defaultModelDir(ROOT);
    if (dir === undefined) {
      console.log('package: no default model in weights/ yet, so none is packed (the tests pass the fixture model explicitly)');
      expect(files.filter((f) => f.startsWith('weights/'))).toEqual([]);
      return;
    }
    const rel = path.relative(ROOT, dir).split(path.sep).join('/');
    const want: string[] = [];
    const walk = (d: string): void => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        const p = path.join(d, e.name);
        if (e.isDirectory()) walk(p);
        else want.push(path.relative(ROOT, p).split(path.sep).join('/'));
      }
    };
    walk(dir);
    // package.json "files" must name this folder (weights/<model>), or the package ships without its default.
    for (const f of want) expect(files).toContain(f);
    expect(files).toContain(`${rel}/modules.json`);
  });

  test('installed with no build tools: require() loads the prebuilt addon and embeds two sentences', () => {
    expect(fs.existsSync(path.join(app, 'node_modules', PKG.name, 'prebuilds'))).toBe(true);
    expect(fs.existsSync(path.join(app, 'node_modules', PKG.name, 'build'))).toBe(false);
    // The PATH really holds no build tool.
    for (const tool of ['cmake', 'g++', 'gcc', 'cc', 'c++', 'nvcc', 'make']) expect(fs.existsSync(path.join(bin, tool))).toBe(false);
    fs.writeFileSync(
      path.join(app, 'cjs.js'),
      `const kst = require('${PKG.name}');
(async () => {
  const model = await kst.SentenceTransformer.load(${modelDirForJs});
  const [a, b] = await model.encode(['한 남자가 음식을 먹는다.', '한 남자가 빵 한 조각을 먹는다.']);
  const info = model.modules[0].info();
  console.log(JSON.stringify({ dim: a.length, cos: kst.util.cosSim(a, b)[0][0], isa: info.isa, best: kst.detectIsa(), version: require('${PKG.name}/package.json').version, a: Array.from(a) }));
  model.dispose();
})().catch((e) => { console.error(e.message); process.exit(1); });
`,
    );
    const out = JSON.parse(ok(run(bin + '/node', ['cjs.js'], { cwd: app, env }), 'node cjs.js'));
    expect(out.dim).toBeGreaterThan(0);
    expect(out.cos).toBeGreaterThan(-1);
    expect(out.cos).toBeLessThanOrEqual(1 + 1e-6);
    expect(out.version).toBe(PKG.version);

    // KST_ISA=scalar: the plain scalar kernels run from the same binary and give the same embedding.
    const scalar = JSON.parse(ok(run(bin + '/node', ['cjs.js'], { cwd: app, env: { ...env, KST_ISA: 'scalar' } }), 'KST_ISA=scalar node cjs.js'));
    expect(scalar.isa).toBe('scalar');
    expect(out.isa).toBe(out.best);
    let maxDiff = 0;
    out.a.forEach((v: number, i: number) => (maxDiff = Math.max(maxDiff, Math.abs(v - scalar.a[i]))));
    console.log(`installed package: default isa ${out.isa}, KST_ISA=scalar gives isa ${scalar.isa}, max |Δ| ${maxDiff.toExponential(2)}`);
    expect(maxDiff).toBeLessThan(1e-4);
  });

  test('import (ESM) works, named and default exports', () => {
    fs.writeFileSync(
      path.join(app, 'esm.mjs'),
      `import { SentenceTransformer, util } from '${PKG.name}';
import kst from '${PKG.name}';
const model = await SentenceTransformer.load(${modelDirForJs});
const [a, b] = await model.encode(['치타가 달린다.', '원숭이가 드럼을 친다.']);
console.log(JSON.stringify({ dim: a.length, cos: util.cosSim(a, b)[0][0], same: kst.SentenceTransformer === SentenceTransformer }));
model.dispose();
`,
    );
    const out = JSON.parse(ok(run(bin + '/node', ['esm.mjs'], { cwd: app, env }), 'node esm.mjs'));
    expect(out.dim).toBeGreaterThan(0);
    expect(Number.isFinite(out.cos)).toBe(true);
    expect(out.same).toBe(true);
  });

  test('npx ko-sbert search runs the seed demo; info reports the prebuilt addon; bad usage exits 2', () => {
    const search = ok(run(bin + '/npx', ['--offline', 'ko-sbert', 'search', ...modelArgs], { cwd: app, env }), 'npx ko-sbert search');
    expect(search).toContain('Query: 한 남자가 파스타를 먹는다.');
    expect(search).toContain('Query: 치타가 들판을 가로 질러 먹이를 쫓는다.');
    expect((search.match(/\(Score: -?\d\.\d{4}\)/g) ?? []).length).toBe(15);

    const info = JSON.parse(ok(run(bin + '/npx', ['--offline', 'ko-sbert', 'info', '--json', ...modelArgs], { cwd: app, env }), 'npx ko-sbert info'));
    expect(info.addon).toBe(fs.realpathSync(path.join(app, 'node_modules', PKG.name, 'prebuilds', `${process.platform}-${process.arch}`, `${PKG.name}.node`)));
    expect(info.backend).toBe('cpu');

    const bad = run(bin + '/npx', ['--offline', 'ko-sbert', 'search', '--top-k', 'x', ...modelArgs], { cwd: app, env });
    expect(bad.status).toBe(2);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
  });

  test('type tests: tsc --noEmit on CJS and ESM consumer files against the installed types', () => {
    const types = path.join(app, 'types');
    fs.mkdirSync(types);
    for (const f of ['consumer.mts', 'consumer.cts']) fs.copyFileSync(path.join(ROOT, 'test', 'types', f), path.join(types, f));
    fs.writeFileSync(
      path.join(types, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2021',
          module: 'node16',
          moduleResolution: 'node16',
          strict: true,
          noEmit: true,
          // @huggingface/tokenizers' own .d.ts files do not compile under node16 resolution (extensionless
          // relative imports in an ESM package); skipLibCheck is how consumers build against it.
          skipLibCheck: true,
          typeRoots: [path.join(ROOT, 'node_modules', '@types')],
          types: ['node'],
        },
        files: ['consumer.mts', 'consumer.cts'],
      }),
    );
    ok(run(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', types], { cwd: types }), 'tsc --noEmit (installed types)');
  });
});
