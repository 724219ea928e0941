#!/usr/bin/env node
/**
 * Stands in for node-gyp when prebuildify runs (scripts/prebuild.js passes it as `nodeGyp`).
 * prebuildify calls `<node-gyp> rebuild --target=<v> --devdir=<d> --arch=<a> --release` in its cwd and then
 * takes the first *.node file in <cwd>/build/Release. This shim builds the addon with cmake-js instead
 * (the project is CMake-based), from the package root's CMakeLists.txt into <cwd>/build, so that the
 * prebuild never touches the developer's own build/ tree. Node-API: the target version is irrelevant.
 */
'use strict';
const path = require('path');
const { spawnSync } = require('child_process');

const root = path.resolve(__dirname, '..');
const args = process.argv.slice(2);
const arch = (args.find((a) => a.startsWith('--arch=')) || '').slice('--arch='.length) || process.arch;
const debug = args.includes('--debug');
const cmakeJs = require.resolve('cmake-js/bin/cmake-js', { paths: [root] });
const out = path.join(process.cwd(), 'build');
const cmd = [cmakeJs, 'compile', '--directory', root, '--out', out, '--arch', arch];
if (debug) cmd.push('--debug');
console.error(`[prebuild] cmake-js ${cmd.slice(1).join(' ')}`);
const r = spawnSync(process.execPath, cmd, { stdio: 'inherit', cwd: root });
process.exit(r.status === null ? 1 : r.status);
