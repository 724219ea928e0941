#!/usr/bin/env node
/**
 * `npm run prebuild`: the prebuilt Node-API addon that ships in the package.
 *
 *   prebuilds/<platform>-<arch>/ko-sentence-transformers.node   (stripped; found by node-gyp-build)
 *
 * prebuildify drives the build, with scripts/prebuild-cmake-js.js standing in for node-gyp (the project is
 * built by cmake-js). It builds in build-prebuild/ so a developer's build/ is left alone. Before stripping,
 * scripts/check-isa.js checks that only the *_avx2 / *_avx512 code uses AVX registers, so the one x86-64
 * binary loads on every x86-64 CPU (cpuid picks the kernels at run time).
 */
'use strict';
const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');
const prebuildify = require('prebuildify');

const root = path.resolve(__dirname, '..');
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
const stage = path.join(root, 'build-prebuild');
fs.mkdirSync(stage, { recursive: true });

const outDir = path.join(root, 'prebuilds', `${process.platform}-${process.arch}`);
const file = path.join(outDir, `${pkg.name}.node`);
fs.rmSync(outDir, { recursive: true, force: true });

prebuildify(
  {
    napi: true,
    strip: false, // stripped below, after the ISA check has read the symbols
    cwd: stage,
    out: root,
    name: pkg.name,
    nodeGyp: path.join(__dirname, 'prebuild-cmake-js.js'),
    // Node-API: one build serves every Node version; prebuildify passes this to the shim, which ignores it.
    targets: [{ runtime: 'node', target: process.versions.node }],
  },
  (err) => {
    if (err) {
      console.error(`prebuild failed: ${err.message}`);
      process.exit(1);
    }
    if (!fs.existsSync(file)) {
      console.error(`prebuild failed: ${file} was not produced`);
      process.exit(1);
    }
    if (process.arch === 'x64') {
      const check = spawnSync(process.execPath, [path.join(__dirname, 'check-isa.js'), file, path.join(stage, 'build')], { stdio: 'inherit' });
      if (check.status !== 0) process.exit(check.status === null ? 1 : check.status);
    }
    if (process.platform === 'linux' || process.platform === 'darwin') {
      // The addon and any optional shared library prebuildify copied beside it (e.g. the CUDA backend).
      for (const f of fs.readdirSync(outDir)) {
        const p = path.join(outDir, f);
        const args = process.platform === 'darwin' ? ['-Sx', p] : ['--strip-all', p];
        const s = spawnSync('strip', args, { stdio: 'inherit' });
        if (s.status !== 0) {
          console.error(`prebuild failed: strip ${f} failed`);
          process.exit(1);
        }
      }
    }
    for (const f of fs.readdirSync(outDir)) {
      console.log(`prebuild: ${path.relative(root, path.join(outDir, f))} (${fs.statSync(path.join(outDir, f)).size} bytes)`);
    }
  },
);
