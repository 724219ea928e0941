#!/usr/bin/env node
/**
 * Checks that an x86-64 addon built for every x86-64 CPU uses AVX registers (ymm/zmm) only in code compiled
 * from the *_avx2.cpp / *_avx512.cpp files (which run only after cpuid says the CPU has them).
 *
 *   node scripts/check-isa.js <unstripped kst.node> <cmake build dir>
 *
 * 1. Every object file of the build whose source is not *_avx2 / *_avx512 must contain no ymm/zmm at all
 *    (catches -march=native and stray intrinsics).
 * 2. In the linked binary, every function that touches ymm/zmm must be defined by an AVX object file and
 *    by no baseline object (catches an inline function from a header compiled with AVX flags in one file
 *    and merged by the linker with the baseline copy used elsewhere).
 * Needs binutils (objdump, nm); without them it says so and exits 0.
 */
'use strict';
const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');

const [binary, buildDir] = process.argv.slice(2);
if (!binary || !buildDir) {
  console.error('usage: check-isa.js <kst.node> <build dir>');
  process.exit(2);
}
function run(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 30 });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}
try {
  run('objdump', ['--version']);
} catch {
  console.log('check-isa: objdump not found, ISA check skipped');
  process.exit(0);
}

const WIDE = /%[yz]mm\d+/;
function objects(dir) {
  const out = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...objects(p));
    else if (/\.(o|obj)$/.test(e.name)) out.push(p);
  }
  return out;
}
const isAvxObject = (o) => /_avx(2|512)\.cpp\.o(bj)?$/.test(o);

/** Function name → does its body use ymm/zmm, from `objdump -d`. */
function wideFunctions(file) {
  const text = run('objdump', ['-d', '--no-show-raw-insn', file]);
  const wide = new Set();
  let current = '';
  for (const line of text.split('\n')) {
    const m = /^[0-9a-f]+ <(.+)>:$/.exec(line);
    if (m) current = m[1];
    else if (current && WIDE.test(line)) wide.add(current);
  }
  return wide;
}
function definedText(file) {
  const names = new Set();
  for (const line of run('nm', ['--defined-only', file]).split('\n')) {
    const m = /^[0-9a-f]*\s+([TtWw])\s+(.+)$/.exec(line);
    if (m) names.add(m[2]);
  }
  return names;
}

const objs = objects(buildDir).filter((o) => !/test_ops/.test(o));
if (objs.length === 0) {
  console.error(`check-isa: no object files under ${buildDir}`);
  process.exit(1);
}
const problems = [];
const avxDefs = new Set();
const baseDefs = new Set();
for (const o of objs) {
  const defs = definedText(o);
  if (isAvxObject(o)) {
    defs.forEach((d) => avxDefs.add(d));
    continue;
  }
  defs.forEach((d) => baseDefs.add(d));
  const wide = wideFunctions(o);
  if (wide.size) problems.push(`${path.relative(buildDir, o)} (baseline) uses ymm/zmm in: ${[...wide].slice(0, 5).join(', ')}`);
}
const linkedWide = wideFunctions(binary);
for (const f of linkedWide) {
  const name = f.replace(/@plt$/, '');
  if (!avxDefs.has(name)) problems.push(`${path.basename(binary)}: ${name} uses ymm/zmm but no *_avx2/*_avx512 object defines it`);
  else if (baseDefs.has(name)) problems.push(`${path.basename(binary)}: ${name} uses ymm/zmm and is also defined by a baseline object (merged inline function)`);
}
if (problems.length) {
  console.error('check-isa: AVX code outside the cpuid-dispatched files:\n  ' + problems.join('\n  '));
  process.exit(1);
}
console.log(
  `check-isa: ${objs.filter((o) => !isAvxObject(o)).length} baseline objects have no ymm/zmm; ` +
    `${linkedWide.size} functions in ${path.basename(binary)} use ymm/zmm, all from *_avx2/*_avx512 objects only`,
);
