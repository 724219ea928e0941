/**
 * Hugging Face Hub ids ("org/name"): resolved from the standard Hugging Face cache and, for what is missing,
 * downloaded from the Hub into that same cache, laid out exactly as huggingface_hub lays it out:
 *
 *   <cache>/models--org--name/refs/<revision>          the commit hash the revision pointed at
 *   <cache>/models--org--name/blobs/<etag>             file contents, named by ETag (sha256 for LFS files)
 *   <cache>/models--org--name/snapshots/<commit>/<f>   relative symlinks into blobs/ (copies where links fail)
 *   <cache>/models--org--name/.no_exist/<commit>/<f>   empty markers for files the revision does not have
 *
 * The cache is options.cacheDir, else HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub, so models
 * Python already downloaded are reused and models downloaded here are reused by Python. The endpoint is
 * HF_ENDPOINT (default https://huggingface.co), the token HF_TOKEN. HF_HUB_OFFLINE=1 never touches the network.
 *
 * Which files: modules.json, then what it names: per module folder its config files, the weights
 * (model.safetensors, else pytorch_model.bin) and the tokenizer files. A revision that is in the cache with
 * every needed file (or a .no_exist marker for it) is used without any request; to pick up a branch that moved,
 * pass the new commit as `revision` or remove refs/<revision>.
 *
 * Every file name, whether from a config or from the server, is checked to stay inside the snapshot folder.
 */
import * as fs from 'fs';
import * as http from 'http';
import * as https from 'https';
import * as os from 'os';
import * as path from 'path';

import { downloadBlob, getJson, HubHttpError, HttpOptions } from './hub-http';

export interface HubOptions {
  /** Branch, tag or commit (default "main"). */
  revision?: string;
  /** The hub cache folder (default HF_HUB_CACHE, $HF_HOME/hub, ~/.cache/huggingface/hub). */
  cacheDir?: string;
  /** The Hub's base URL (default HF_ENDPOINT, else https://huggingface.co). */
  endpoint?: string;
  /** Access token (default HF_TOKEN), sent as `Authorization: Bearer`. */
  token?: string;
  /** Use the cache only (also when HF_HUB_OFFLINE=1). */
  localFilesOnly?: boolean;
  /** Progress bars on stderr when it is a TTY (default true). */
  showProgress?: boolean;
  /** Idle network timeout in ms (default 60000). */
  timeoutMs?: number;
  /** Called for every HTTP request (for tests and logging). */
  onRequest?: (method: string, url: string) => void;
}

const REPO_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,95}(\/[A-Za-z0-9][A-Za-z0-9._-]{0,95})?$/;
const COMMIT = /^[0-9a-f]{40}$/;
const DEFAULT_ENDPOINT = 'https://huggingface.co';

export function hubCacheDir(cacheDir?: string): string {
  if (cacheDir) return cacheDir;
  if (process.env.HF_HUB_CACHE) return process.env.HF_HUB_CACHE;
  if (process.env.HF_HOME) return path.join(process.env.HF_HOME, 'hub');
  return path.join(os.homedir(), '.cache', 'huggingface', 'hub');
}

export function isHubId(s: string): boolean {
  return REPO_ID.test(s) && !s.includes('..');
}

/** HF_HUB_OFFLINE as huggingface_hub reads it (1 / ON / YES / TRUE). */
export function hubOffline(): boolean {
  return ['1', 'ON', 'YES', 'TRUE'].includes((process.env.HF_HUB_OFFLINE ?? '').trim().toUpperCase());
}

function checkId(id: string): void {
  if (!isHubId(id)) throw new Error(`${id}: not a local folder and not a Hugging Face model id ("org/name")`);
}

/** Branch, tag or commit names: no path separators, no "..", no NUL (they become file names under refs/). */
export function checkRevision(revision: string): void {
  if (!/^[A-Za-z0-9._-]{1,200}$/.test(revision) || revision.includes('..') || revision === '.') {
    throw new Error(
      `revision ${JSON.stringify(revision)} is not a valid branch, tag or commit name ` +
        '(letters, digits, ".", "_", "-"; path separators and ".." are refused)',
    );
  }
}

/**
 * A file name inside a repository (from a config or from the server), normalised to "a/b/c"; throws `where`
 * + why for names that are absolute, contain "..", backslashes, NUL or control characters, or leave `root`.
 * The empty name (the repository root) is allowed only when `allowRoot`.
 */
export function checkRepoPath(name: unknown, where: string, root = '/snapshot', allowRoot = false): string {
  const bad = (why: string): never => {
    throw new Error(`${where}: ${JSON.stringify(name)} ${why}; refused (file names must stay inside the model folder)`);
  };
  if (typeof name !== 'string') return bad('is not a string');
  if (name.length > 1000) bad('is longer than 1000 characters');
  if (name.includes('\0')) bad('contains a NUL character');
  if (/[\u0000-\u001f]/.test(name)) bad('contains a control character');
  if (name.includes('\\')) bad('contains a backslash');
  if (name.startsWith('/') || /^[A-Za-z]:/.test(name) || path.isAbsolute(name)) bad('is an absolute path');
  if (name.includes('..')) bad('contains ".."');
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  const rel = parts.join('/');
  if (!rel && !allowRoot) bad('names no file');
  const r = path.resolve(root);
  const p = path.resolve(r, ...parts);
  if (p !== r && !p.startsWith(r + path.sep)) bad('resolves outside the model folder');
  return rel;
}

function repoFolder(cache: string, id: string): string {
  return path.join(cache, `models--${id.replace(/\//g, '--')}`);
}

function howTo(id: string): string {
  return (
    `download it once where there is network access, e.g. \`huggingface-cli download ${id}\` or ` +
    `\`python -c "from sentence_transformers import SentenceTransformer; SentenceTransformer('${id}')"\`, ` +
    `and point HF_HUB_CACHE / HF_HOME (or options.cacheDir) at that cache; or pass the path of a local model folder`
  );
}

function readRef(repo: string, revision: string): string | undefined {
  const ref = path.join(repo, 'refs', revision);
  if (!fs.existsSync(ref) || !fs.statSync(ref).isFile()) return undefined;
  const commit = fs.readFileSync(ref, 'utf8').trim();
  if (!COMMIT.test(commit)) throw new Error(`${ref}: does not hold a commit hash`);
  return commit;
}

/**
 * The snapshot folder of a cached Hub model, cache only (no network, no check of the files in it); throws a
 * message with the fix when it is not cached.
 */
export function resolveModelDir(id: string, options: HubOptions = {}): string {
  checkId(id);
  const revision = options.revision ?? 'main';
  checkRevision(revision);
  const cache = hubCacheDir(options.cacheDir);
  const repo = repoFolder(cache, id);
  if (!fs.existsSync(repo)) throw new Error(`${id}: not in the Hugging Face cache (${repo} does not exist); ${howTo(id)}`);
  const commit = readRef(repo, revision) ?? (COMMIT.test(revision) ? revision : undefined);
  if (!commit) {
    throw new Error(`${id}: revision "${revision}" is not in the cache (${path.join(repo, 'refs', revision)} not found); ${howTo(id)}`);
  }
  const snap = path.join(repo, 'snapshots', commit);
  if (!fs.existsSync(snap) || !fs.statSync(snap).isDirectory()) {
    throw new Error(`${id}: snapshot ${commit} is missing from the cache (${snap}); ${howTo(id)}`);
  }
  return snap;
}

/** Where one file of one commit is, or is known not to be. */
class RepoCache {
  constructor(readonly repo: string) {}

  snapshot(commit: string): string {
    return path.join(this.repo, 'snapshots', commit);
  }

  has(commit: string, file: string): boolean {
    // existsSync follows the link: a dangling link into a removed blob counts as missing.
    const p = path.join(this.snapshot(commit), ...file.split('/'));
    return fs.existsSync(p) && fs.statSync(p).isFile();
  }

  knownMissing(commit: string, file: string): boolean {
    return fs.existsSync(path.join(this.repo, '.no_exist', commit, ...file.split('/')));
  }

  markMissing(commit: string, file: string): void {
    const p = path.join(this.repo, '.no_exist', commit, ...file.split('/'));
    try {
      fs.mkdirSync(path.dirname(p), { recursive: true });
      fs.closeSync(fs.openSync(p, 'a'));
    } catch {
      /* a marker is an optimisation only */
    }
  }

  writeRef(revision: string, commit: string): void {
    if (revision === commit) return;
    const ref = path.join(this.repo, 'refs', revision);
    fs.mkdirSync(path.dirname(ref), { recursive: true });
    if (fs.existsSync(ref) && fs.readFileSync(ref, 'utf8').trim() === commit) return;
    const tmp = `${ref}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, commit);
    fs.renameSync(tmp, ref);
  }

  /** snapshots/<commit>/<file> → ../../blobs/<etag> (relative link; a copy where links are not allowed). */
  link(commit: string, file: string, blob: string): void {
    const p = path.join(this.snapshot(commit), ...file.split('/'));
    fs.mkdirSync(path.dirname(p), { recursive: true });
    const tmp = `${p}.${process.pid}.tmp`;
    fs.rmSync(tmp, { force: true });
    try {
      fs.symlinkSync(path.relative(path.dirname(p), blob), tmp);
    } catch {
      fs.copyFileSync(blob, tmp);
    }
    fs.renameSync(tmp, p);
  }
}

type ModuleKind = 'transformer' | 'kobert' | 'pooling' | 'dense' | 'normalize' | 'other';

function kindOf(type: string): ModuleKind {
  const cls = type.split('.').pop() ?? '';
  if (cls === 'KoBertTransformer') return 'kobert';
  if (cls === 'Transformer') return 'transformer';
  if (cls === 'Pooling') return 'pooling';
  if (cls === 'Dense') return 'dense';
  if (cls === 'Normalize') return 'normalize';
  return 'other';
}

const TOKENIZER_EXTRA = ['vocab.txt', 'spiece.model', 'sentencepiece.bpe.model', 'tokenizer_78b3253a26.model'];

class Snapshotter {
  private commit: string | undefined;
  private listing: Set<string> | undefined;
  private listingTried = false;
  private readonly cache: RepoCache;
  private readonly endpoint: string;
  private readonly http: HttpOptions;
  readonly offline: boolean;
  /** 'cache': answer from the cache only, noting in `incomplete` what would need the network; 'net': download. */
  mode: 'cache' | 'net' = 'cache';
  incomplete = false;
  readonly downloaded: string[] = [];

  constructor(
    readonly id: string,
    readonly revision: string,
    cacheDir: string,
    options: HubOptions,
  ) {
    this.cache = new RepoCache(repoFolder(cacheDir, id));
    this.offline = options.localFilesOnly === true || hubOffline();
    this.endpoint = (options.endpoint ?? process.env.HF_ENDPOINT ?? DEFAULT_ENDPOINT).replace(/\/+$/, '');
    if (!/^https?:\/\/[^/]/.test(this.endpoint)) throw new Error(`HF_ENDPOINT "${this.endpoint}" is not an http(s) URL`);
    const token = options.token ?? process.env.HF_TOKEN ?? process.env.HUGGING_FACE_HUB_TOKEN;
    this.http = {
      token: token ? token.trim() : undefined,
      timeoutMs: options.timeoutMs ?? 60000,
      maxRedirects: 10,
      userAgent: 'ko-sentence-transformers (node ' + process.versions.node + ')',
      progress: options.showProgress !== false,
      agents: { http: new http.Agent({ keepAlive: true }), https: new https.Agent({ keepAlive: true }) },
      onRequest: options.onRequest,
    };
    this.commit = COMMIT.test(revision) ? revision : readRef(this.cache.repo, revision);
  }

  close(): void {
    this.http.agents.http.destroy();
    this.http.agents.https.destroy();
  }

  private notCached(what: string): Error {
    const repo = this.cache.repo;
    const where = !fs.existsSync(repo)
      ? `not in the Hugging Face cache (${repo} does not exist)`
      : !this.commit
        ? `revision "${this.revision}" is not in the cache (${path.join(repo, 'refs', this.revision)} not found)`
        : `"${what}" of snapshot ${this.commit} is not in the cache (${this.cache.snapshot(this.commit)})`;
    return new Error(`${this.id}: ${where} and HF_HUB_OFFLINE=1 (or localFilesOnly) forbids downloading it; ${howTo(this.id)}`);
  }

  private networkError(file: string, e: Error): Error {
    const repo = this.cache.repo;
    const where = !fs.existsSync(repo)
      ? `not in the Hugging Face cache (${repo} does not exist) and`
      : !this.commit
        ? `revision "${this.revision}" is not in the cache (${path.join(repo, 'refs', this.revision)} not found) and`
        : `"${file}" is not in the cache and`;
    return new Error(`${this.id}: ${where} downloading "${file}" from ${this.endpoint} failed: ${e.message}; ${howTo(this.id)}`);
  }

  private url(file: string): string {
    const rev = encodeURIComponent(this.commit ?? this.revision);
    return `${this.endpoint}/${this.id}/resolve/${rev}/${file.split('/').map(encodeURIComponent).join('/')}`;
  }

  /** The revision's file list from /api/models/<id>/revision/<rev>, when the endpoint offers it. */
  private async tryListing(): Promise<void> {
    if (this.listingTried) return;
    this.listingTried = true;
    const rev = encodeURIComponent(this.commit ?? this.revision);
    let v: unknown;
    try {
      v = await getJson(`${this.endpoint}/api/models/${this.id}/revision/${rev}`, this.http);
    } catch {
      return; // the resolve requests report network trouble with more context
    }
    if (typeof v !== 'object' || v === null) return;
    const o = v as { sha?: unknown; siblings?: unknown };
    if (!Array.isArray(o.siblings) || typeof o.sha !== 'string' || !COMMIT.test(o.sha)) return;
    if (this.commit && o.sha !== this.commit) return;
    const names = new Set<string>();
    o.siblings.forEach((s, i) => {
      const name = (s as { rfilename?: unknown } | null)?.rfilename;
      names.add(checkRepoPath(name, `${this.id}: the server's file list: siblings[${i}].rfilename`));
    });
    this.commit = o.sha;
    this.listing = names;
  }

  /** Files of the revision under `dir` whose names end with `suffix` (only known from the server's file list). */
  listed(dir: string, suffix: string): string[] {
    if (!this.listing) return [];
    const prefix = dir ? `${dir}/` : '';
    return [...this.listing].filter((f) => f.startsWith(prefix) && !f.slice(prefix.length).includes('/') && f.endsWith(suffix));
  }

  /**
   * Makes `file` present in snapshots/<commit>/ if the revision has it. Returns false when the revision does
   * not have it (404, or a .no_exist marker); throws for a required file that is missing.
   */
  async get(file: string, required: boolean): Promise<boolean> {
    file = checkRepoPath(file, `${this.id}: file name`);
    if (this.commit) {
      if (this.cache.has(this.commit, file)) return true;
      if (this.cache.knownMissing(this.commit, file)) return this.missing(file, required, 'the cache records it as absent (.no_exist)');
    }
    if (this.mode === 'cache') {
      if (!required) return false;
      if (this.offline) throw this.notCached(file);
      this.incomplete = true;
      return false;
    }
    await this.tryListing();
    if (this.commit && this.cache.has(this.commit, file)) return true;
    if (this.listing && !this.listing.has(file)) {
      this.cache.markMissing(this.commit!, file);
      return this.missing(file, required, "it is not in the server's file list");
    }
    const url = this.url(file);
    let r;
    try {
      r = await downloadBlob(url, path.join(this.cache.repo, 'blobs'), file, this.http, this.commit);
    } catch (e) {
      if (e instanceof HubHttpError) {
        if (e.status === 401 || e.status === 403 || e.errorCode === 'GatedRepo') {
          throw new Error(
            `${this.id}: access denied to "${file}" (${e.message}); the repository may be private or gated: ` +
              `set HF_TOKEN (or options.token) to a token with access${this.http.token ? ' (the token that was sent was refused)' : ''}`,
          );
        }
        if (e.errorCode === 'RepositoryNotFound') throw new Error(`${this.id}: repository not found on ${this.endpoint} (${e.message})`);
        if (e.errorCode === 'RevisionNotFound') throw new Error(`${this.id}: revision "${this.revision}" not found on ${this.endpoint} (${e.message})`);
        if (e.status === 404) {
          if (e.commit && !this.commit) {
            this.commit = e.commit;
            this.cache.writeRef(this.revision, e.commit);
          }
          if (this.commit) this.cache.markMissing(this.commit, file);
          return this.missing(file, required, `404 from ${url}`);
        }
        throw new Error(`${this.id}: downloading "${file}" failed: ${e.message}`);
      }
      if (/ENOTFOUND|ECONNREFUSED|EAI_AGAIN|ECONNRESET|ETIMEDOUT|ENETUNREACH|no answer for/.test((e as Error).message)) {
        throw this.networkError(file, e as Error);
      }
      throw new Error(`${this.id}: downloading "${file}" failed: ${(e as Error).message}`);
    }
    if (!this.commit) this.commit = r.commit;
    this.cache.writeRef(this.revision, r.commit);
    this.cache.link(r.commit, file, r.blob);
    this.downloaded.push(file);
    return true;
  }

  /** Neither in the snapshot nor recorded as absent. */
  unknown(file: string): boolean {
    return !this.commit || (!this.cache.has(this.commit, file) && !this.cache.knownMissing(this.commit, file));
  }

  cached(file: string): boolean {
    return !!this.commit && this.cache.has(this.commit, file);
  }

  private missing(file: string, required: boolean, why: string): false {
    if (required) throw new Error(`${this.id}: required file "${file}" is missing from revision "${this.revision}" (${why})`);
    return false;
  }

  async readJson(file: string): Promise<unknown> {
    const p = path.join(this.cache.snapshot(this.commit!), ...file.split('/'));
    try {
      return JSON.parse(fs.readFileSync(p, 'utf8'));
    } catch (e) {
      throw new Error(`${this.id}: ${file}: cannot parse JSON: ${(e as Error).message}`);
    }
  }

  folder(): string {
    if (!this.commit) throw new Error(`${this.id}: could not determine the commit of revision "${this.revision}"`);
    const snap = this.cache.snapshot(this.commit);
    fs.mkdirSync(snap, { recursive: true });
    return snap;
  }
}

const join = (dir: string, f: string): string => (dir ? `${dir}/${f}` : f);

async function getWeights(s: Snapshotter, dir: string, what: string): Promise<void> {
  // Either file will do: a snapshot that holds one of them needs no look-up of the other.
  if (s.cached(join(dir, 'model.safetensors')) || s.cached(join(dir, 'pytorch_model.bin'))) return;
  if (await s.get(join(dir, 'model.safetensors'), false)) return;
  if (await s.get(join(dir, 'pytorch_model.bin'), false)) return;
  if (s.mode === 'cache' && !s.offline) {
    s.incomplete = true;
    return;
  }
  throw new Error(`${s.id}: no ${join(dir, 'model.safetensors')} or ${join(dir, 'pytorch_model.bin')} for the ${what} at revision "${s.revision}"`);
}

async function getWordModule(s: Snapshotter, dir: string, kobert: boolean): Promise<void> {
  await s.get(join(dir, 'config.json'), true);
  await s.get(join(dir, 'sentence_bert_config.json'), false);
  await getWeights(s, dir, `word embedding model in "${dir || '.'}"`);
  await s.get(join(dir, 'tokenizer_config.json'), false);
  await s.get(join(dir, 'special_tokens_map.json'), false);
  // tokenizer.json wins over every other tokenizer file (loadTokenizer), except for KoBertTransformer.
  if (!kobert && (await s.get(join(dir, 'tokenizer.json'), false))) return;
  for (const f of TOKENIZER_EXTRA) await s.get(join(dir, f), false);
  for (const f of s.listed(dir, '.model')) await s.get(f, false);
  if (s.mode === 'cache' && !['tokenizer.json', 'spiece.model', 'vocab.txt'].some((f) => s.cached(join(dir, f)))) s.incomplete = true;
}

/**
 * The snapshot folder of Hub model `id` with every file the loader needs, from the cache where present and
 * downloaded otherwise (see the file comment).
 */
export async function snapshotDownload(id: string, options: HubOptions = {}): Promise<string> {
  checkId(id);
  const revision = options.revision ?? 'main';
  checkRevision(revision);
  const s = new Snapshotter(id, revision, hubCacheDir(options.cacheDir), options);
  try {
    // First from the cache alone: a snapshot with every file the loader needs is used without any request
    // (also when it was written by `huggingface-cli download`, which records no absent files). Only when
    // something is missing does the second pass ask the server, for the missing files only.
    await plan(s);
    if (!s.incomplete) return s.folder();
    s.mode = 'net';
    s.incomplete = false;
    await plan(s);
    return s.folder();
  } finally {
    s.close();
  }
}

async function plan(s: Snapshotter): Promise<void> {
  const id = s.id;
  const hasModules = await s.get('modules.json', false);
  if (!hasModules && s.mode === 'cache' && !s.offline && s.unknown('modules.json')) {
    s.incomplete = true;
    return;
  }
  if (hasModules) {
    const v = await s.readJson('modules.json');
    if (!Array.isArray(v)) throw new Error(`${id}: modules.json: must hold a JSON array of modules`);
    const entries = v.map((e, i) => {
      if (typeof e !== 'object' || e === null || Array.isArray(e)) throw new Error(`${id}: modules.json: entry ${i} must be an object`);
      const o = e as Record<string, unknown>;
      if (typeof o.type !== 'string') throw new Error(`${id}: modules.json: entry ${i}: field "type" must be a string`);
      const dir = checkRepoPath(o.path, `${id}: modules.json: entry ${i}: field "path"`, '/snapshot', true);
      return { dir, kind: kindOf(o.type) };
    });
    // Not read by this loader (prompts, similarity function), but Python reads it from the same snapshot.
    await s.get('config_sentence_transformers.json', false);
    for (const { dir, kind } of entries) {
      if (kind === 'transformer' || kind === 'kobert') await getWordModule(s, dir, kind === 'kobert');
      else if (kind === 'pooling') await s.get(join(dir, 'config.json'), true);
      else if (kind === 'dense') {
        await s.get(join(dir, 'config.json'), true);
        await getWeights(s, dir, `Dense module in "${dir}"`);
      }
      // Normalize has no files; unknown module types are reported by the loader.
    }
  } else {
    // A plain transformers folder: the loader adds mean pooling.
    await getWordModule(s, '', false);
  }
}
