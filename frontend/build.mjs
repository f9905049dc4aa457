#!/usr/bin/env node
// Passage front-end asset build: plain Node, no bundler, no network.
//
//   npm ci && node build.mjs           write frontend/static/ (vendor copies, app files, manifest)
//   node build.mjs --check             verify frontend/static/ is up to date; exit 1 if not
//
// Copies the exactly pinned vendor files out of node_modules/ (installed from
// package-lock.json) into static/vendor/ under versioned names, copies src/app.js and
// src/passage.css into static/js/ and static/css/, and writes static/manifest.json:
//
//   { "<logical name>": { "path": "<path relative to static/>", "integrity": "sha384-<base64>" } }
//
// Output is deterministic: the same lockfile and sources always give the same bytes.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = dirname(fileURLToPath(import.meta.url));
const STATIC_DIR = join(ROOT, 'static');
const VENDOR_DIR = 'vendor';
const EXACT_VERSION = /^\d+\.\d+\.\d+$/;
const CHECK_ONLY = process.argv.includes('--check');

function fail(message) {
  console.error(`build.mjs: ${message}`);
  process.exit(1);
}

function readJson(relPath) {
  return JSON.parse(readFileSync(join(ROOT, relPath), 'utf8'));
}

const pkg = readJson('package.json');

/** The exact version pinned in package.json, checked against what npm installed. */
function pinnedVersion(name) {
  const pinned = (pkg.dependencies || {})[name];
  if (typeof pinned !== 'string' || !EXACT_VERSION.test(pinned)) {
    fail(`${name} must be pinned to an exact version in package.json (got ${JSON.stringify(pinned)})`);
  }
  const installedManifest = join(ROOT, 'node_modules', name, 'package.json');
  if (!existsSync(installedManifest)) {
    fail(`${name} is not installed: run \`npm ci\` in frontend/ first`);
  }
  const installed = JSON.parse(readFileSync(installedManifest, 'utf8')).version;
  if (installed !== pinned) {
    fail(`node_modules has ${name}@${installed} but package.json pins ${pinned}: run \`npm ci\``);
  }
  return pinned;
}

function read(relPath) {
  return readFileSync(join(ROOT, relPath));
}

function expectContains(buffer, needle, what) {
  if (!buffer.includes(needle)) {
    fail(`${what} does not contain ${JSON.stringify(needle)}; wrong file or version?`);
  }
}

function sri(buffer) {
  return `sha384-${createHash('sha384').update(buffer).digest('base64')}`;
}

const htmxVersion = pinnedVersion('htmx.org');
const picoVersion = pinnedVersion('@picocss/pico');

const htmx = read('node_modules/htmx.org/dist/htmx.min.js');
expectContains(htmx, `version:"${htmxVersion}"`, 'htmx.min.js');
const pico = read('node_modules/@picocss/pico/css/pico.min.css');
expectContains(pico, `Pico CSS`, 'pico.min.css');
expectContains(pico, ` v${picoVersion} `, 'pico.min.css');

// Files listed in the manifest, by logical name (what templates ask for).
const assets = [
  { name: 'htmx.js', path: `${VENDOR_DIR}/htmx-${htmxVersion}.min.js`, content: htmx },
  { name: 'pico.css', path: `${VENDOR_DIR}/pico-${picoVersion}.min.css`, content: pico },
  { name: 'app.js', path: 'js/app.js', content: read('src/app.js') },
  { name: 'passage.css', path: 'css/passage.css', content: read('src/passage.css') },
];
// Shipped alongside, not referenced by pages: the vendors' licence texts.
const extras = [
  { path: `${VENDOR_DIR}/htmx-${htmxVersion}.LICENSE.txt`, content: read('node_modules/htmx.org/LICENSE') },
  { path: `${VENDOR_DIR}/pico-${picoVersion}.LICENSE.txt`, content: read('node_modules/@picocss/pico/LICENSE.md') },
];

const manifest = {};
for (const asset of [...assets].sort((a, b) => (a.name < b.name ? -1 : 1))) {
  manifest[asset.name] = { path: asset.path, integrity: sri(asset.content) };
}
const outputs = [
  ...assets,
  ...extras,
  { path: 'manifest.json', content: Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`, 'utf8') },
];

// static/vendor/ is owned by this script: anything there that is not an output is stale
// (for example the previous version's files after a bump).
const wanted = new Set(outputs.map((o) => o.path));
const vendorAbs = join(STATIC_DIR, VENDOR_DIR);
const stale = existsSync(vendorAbs)
  ? readdirSync(vendorAbs)
      .map((f) => `${VENDOR_DIR}/${f}`)
      .filter((p) => !wanted.has(p))
      .sort()
  : [];

const changed = outputs.filter((o) => {
  const abs = join(STATIC_DIR, o.path);
  return !existsSync(abs) || !readFileSync(abs).equals(o.content);
});

if (CHECK_ONLY) {
  if (changed.length === 0 && stale.length === 0) {
    console.log(`build.mjs --check: static/ is up to date (${outputs.length} files)`);
    process.exit(0);
  }
  for (const o of changed) console.error(`out of date: static/${o.path}`);
  for (const p of stale) console.error(`stale: static/${p}`);
  fail('static/ does not match the sources: run `npm ci && node build.mjs` in frontend/ and commit');
}

for (const p of stale) {
  rmSync(join(STATIC_DIR, p), { recursive: true, force: true });
  console.log(`removed static/${p}`);
}
for (const o of changed) {
  const abs = join(STATIC_DIR, o.path);
  mkdirSync(dirname(abs), { recursive: true });
  writeFileSync(abs, o.content);
  console.log(`wrote   static/${o.path}`);
}
console.log(`build.mjs: ${outputs.length} files up to date (htmx.org ${htmxVersion}, @picocss/pico ${picoVersion})`);
