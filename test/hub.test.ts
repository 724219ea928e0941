/**
 * Hub downloads against a local imitation of the Hugging Face resolve endpoint (127.0.0.1 only, ephemeral
 * port, closed after): redirects to a blob store (relative and absolute), ETag / X-Linked-Etag /
 * X-Linked-Size / X-Repo-Commit, 404 EntryNotFound for optional files, an optional file-list API, a token check.
 * HF_ENDPOINT points at that server in every test: nothing here touches the internet.
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as http from 'http';
import { AddressInfo } from 'net';
import * as os from 'os';
import * as path from 'path';

import { checkRepoPath, snapshotDownload } from '../src/io/hub';
import { SentenceTransformer } from '../src/sentence-transformer';

const FIXTURES = path.join(__dirname, 'fixtures');
const KOBERT = path.join(FIXTURES, 'kobert-tiny');
const DISTIL = path.join(FIXTURES, 'arch', 'models', 'distilbert-dense-bin');
const SENTENCES = ['한 남자가 음식을 먹는다.', '그 여자가 아이를 돌본다.', '원숭이 한 마리가 드럼을 연주한다.'];
const MAX_REQUESTS = 400;

interface Repo {
  commit: string;
  files: Map<string, Buffer>;
}

interface Logged {
  method: string;
  url: string;
  auth?: string;
}

/** Knobs a test turns on the fake Hub. */
interface Behaviour {
  listing?: boolean;
  /** Paths whose blob body is cut short (Content-Length announces the full size). */
  truncate?: Set<string>;
  /** Paths whose X-Linked-Size is one byte too large (body complete). */
  wrongSize?: Set<string>;
  /** Paths whose LFS etag is a sha256 that does not match the body. */
  wrongSha?: Set<string>;
  /** Require `Authorization: Bearer <token>` on resolve / api requests. */
  token?: string;
  /** Extra names in the file list (hostile server). */
  extraSiblings?: string[];
  /** Served ETag replaced by this (hostile server). */
  etagOverride?: string;
}

function gitBlobSha1(b: Buffer): string {
  return crypto.createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex');
}

function sha256(b: Buffer): string {
  return crypto.createHash('sha256').update(b).digest('hex');
}

function readTree(dir: string, prefix = '', out = new Map<string, Buffer>()): Map<string, Buffer> {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory()) readTree(path.join(dir, e.name), rel, out);
    else out.set(rel, fs.readFileSync(path.join(dir, e.name)));
  }
  return out;
}

class FakeHub {
  readonly repos = new Map<string, Repo>();
  readonly log: Logged[] = [];
  behaviour: Behaviour = {};
  private server!: http.Server;
  url = '';

  add(id: string, dir: string, patch?: (files: Map<string, Buffer>) => void): Repo {
    const files = readTree(dir);
    patch?.(files);
    const commit = crypto.createHash('sha1').update(id).update(String(this.repos.size)).digest('hex');
    const r = { commit, files };
    this.repos.set(id, r);
    return r;
  }

  async start(): Promise<void> {
    this.server = http.createServer((req, res) => this.handle(req, res));
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  resolves(): Logged[] {
    return this.log.filter((l) => l.url.includes('/resolve/'));
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const b = this.behaviour;
    this.log.push({ method: req.method ?? '', url: req.url ?? '', auth: req.headers.authorization });
    if (this.log.length > MAX_REQUESTS) return void res.writeHead(503).end('too many requests');
    if (req.method !== 'GET' && req.method !== 'HEAD') return void res.writeHead(405).end();
    const url = new URL(req.url ?? '/', this.url);
    const parts = url.pathname.split('/').slice(1).map(decodeURIComponent);
    const authorised = !b.token || req.headers.authorization === `Bearer ${b.token}`;

    // Blob store behind the redirects: /blob-store/<org>/<name>/<path...>
    if (parts[0] === 'blob-store') {
      const repo = this.repos.get(`${parts[1]}/${parts[2]}`);
      const file = parts.slice(3).join('/');
      const body = repo?.files.get(file);
      if (!body) return void res.writeHead(404).end();
      res.writeHead(200, { 'Content-Length': String(body.length), 'Content-Type': 'application/octet-stream' });
      if (req.method === 'HEAD') return void res.end();
      if (b.truncate?.has(file)) {
        res.write(body.subarray(0, Math.floor(body.length / 2)));
        setTimeout(() => res.socket?.destroy(), 20);
        return;
      }
      return void res.end(body);
    }

    if (parts[0] === 'api' && parts[1] === 'models') {
      const repo = this.repos.get(`${parts[2]}/${parts[3]}`);
      if (!b.listing || !repo || parts[4] !== 'revision') return void res.writeHead(404).end('{"error":"not found"}');
      if (!authorised) return void res.writeHead(401).end('{"error":"unauthorized"}');
      const siblings = [...repo.files.keys(), ...(b.extraSiblings ?? [])].map((rfilename) => ({ rfilename }));
      return void res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ id: `${parts[2]}/${parts[3]}`, sha: repo.commit, siblings }));
    }

    // /<org>/<name>/resolve/<rev>/<path...>
    if (parts[2] !== 'resolve' || parts.length < 5) return void res.writeHead(404).end();
    const id = `${parts[0]}/${parts[1]}`;
    const repo = this.repos.get(id);
    if (!repo) return void res.writeHead(404, { 'X-Error-Code': 'RepositoryNotFound' }).end('Repository not found');
    if (!authorised) return void res.writeHead(401, { 'X-Error-Code': 'GatedRepo' }).end('Access restricted');
    const rev = parts[3];
    if (rev !== 'main' && rev !== repo.commit) return void res.writeHead(404, { 'X-Error-Code': 'RevisionNotFound' }).end('Invalid rev id');
    const file = parts.slice(4).join('/');
    const body = repo.files.get(file);
    if (!body) {
      return void res.writeHead(404, { 'X-Error-Code': 'EntryNotFound', 'X-Repo-Commit': repo.commit }).end('Entry not found');
    }
    const lfs = /\.(safetensors|bin|model)$/.test(file);
    if (lfs) {
      // LFS: the resolve answer describes the file, the body sits behind a redirect (relative for
      // .safetensors, absolute for the others).
      const where = `/blob-store/${id}/${file}`;
      const size = body.length + (b.wrongSize?.has(file) ? 1 : 0);
      const etag = b.etagOverride ?? (b.wrongSha?.has(file) ? sha256(Buffer.from('something else')) : sha256(body));
      res.writeHead(302, {
        Location: file.endsWith('.safetensors') ? where : `${this.url}${where}`,
        'X-Repo-Commit': repo.commit,
        'X-Linked-Etag': `"${etag}"`,
        'X-Linked-Size': String(size),
        ETag: `W/"${gitBlobSha1(Buffer.from('pointer ' + file))}"`,
        'Content-Length': '0',
      });
      return void res.end();
    }
    res.writeHead(200, {
      'X-Repo-Commit': repo.commit,
      ETag: `"${b.etagOverride ?? gitBlobSha1(body)}"`,
      'Content-Length': String(body.length),
    });
    if (req.method === 'HEAD') return void res.end();
    res.end(body);
  }
}

const ENV_KEYS = ['HF_ENDPOINT', 'HF_TOKEN', 'HUGGING_FACE_HUB_TOKEN', 'HF_HUB_OFFLINE', 'HF_HUB_CACHE', 'HF_HOME'];
const savedEnv: Record<string, string | undefined> = {};
const hub = new FakeHub();
const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'kst-hubdl-'));
let cacheN = 0;
const newCache = (): string => fs.mkdtempSync(path.join(tmpRoot, `cache${cacheN++}-`));

beforeAll(async () => {
  for (const k of ENV_KEYS) savedEnv[k] = process.env[k];
  await hub.start();
  hub.add('org/kobert-tiny', KOBERT);
  hub.add('org/distil', DISTIL);
  hub.add('org/evil-path', KOBERT, (f) => {
    f.set('modules.json', Buffer.from(JSON.stringify([{ idx: 0, name: '0', path: '../../etc/passwd', type: 'sentence_transformers.models.Transformer' }])));
  });
  hub.add('org/evil-abs', KOBERT, (f) => {
    f.set('modules.json', Buffer.from(JSON.stringify([{ idx: 0, name: '0', path: '/etc', type: 'sentence_transformers.models.Transformer' }])));
  });
  hub.add('org/no-pooling', KOBERT, (f) => f.delete('1_Pooling/config.json'));
});

beforeEach(() => {
  for (const k of ENV_KEYS) delete process.env[k];
  process.env.HF_ENDPOINT = hub.url; // every test: the local server, never the internet
  hub.behaviour = {};
  hub.log.length = 0;
});

afterAll(async () => {
  await hub.stop();
  for (const k of ENV_KEYS) {
    if (savedEnv[k] === undefined) delete process.env[k];
    else process.env[k] = savedEnv[k];
  }
  fs.rmSync(tmpRoot, { recursive: true, force: true });
});

async function embed(model: string, options: Parameters<typeof SentenceTransformer.load>[1] = {}): Promise<number[][]> {
  const m = await SentenceTransformer.load(model, options);
  try {
    return (await m.encode(SENTENCES)).map((v) => Array.from(v));
  } finally {
    m.dispose();
  }
}

function listFiles(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { recursive: true }) as string[];
}

describe('download from a local imitation of the Hub', () => {
  test('load("org/name") downloads, equals the folder load, and lays the cache out like huggingface_hub', async () => {
    const cache = newCache();
    const expected = await embed(KOBERT);
    expect(await embed('org/kobert-tiny', { cacheDir: cache })).toEqual(expected);
    expect(hub.resolves().length).toBeGreaterThan(0);
    expect(hub.log.every((l) => l.auth === undefined)).toBe(true); // no token set: no header

    const { commit, files } = hub.repos.get('org/kobert-tiny')!;
    const repo = path.join(cache, 'models--org--kobert-tiny');
    expect(fs.readFileSync(path.join(repo, 'refs', 'main'), 'utf8')).toBe(commit);
    const snap = path.join(repo, 'snapshots', commit);
    for (const [f, body] of files) {
      const p = path.join(snap, f);
      expect(fs.readFileSync(p)).toEqual(body);
      const st = fs.lstatSync(p);
      expect(st.isSymbolicLink()).toBe(true);
      const target = fs.readlinkSync(p);
      expect(path.isAbsolute(target)).toBe(false);
      const blobName = /\.(safetensors|bin|model)$/.test(f) ? sha256(body) : gitBlobSha1(body);
      expect(path.resolve(path.dirname(p), target)).toBe(path.join(repo, 'blobs', blobName));
    }
    expect(listFiles(path.join(repo, 'blobs')).every((f) => /^[0-9a-f]{40}([0-9a-f]{24})?$/.test(f))).toBe(true);
    // Optional files the revision lacks are recorded like huggingface_hub does, so later loads need no request.
    expect(fs.existsSync(path.join(repo, '.no_exist', commit, '0_KoBertTransformer', 'spiece.model'))).toBe(true);
    // Only pytorch_model.bin's absence matters when model.safetensors exists: it is never asked for.
    expect(hub.resolves().some((l) => l.url.endsWith('pytorch_model.bin'))).toBe(false);

    // A second load makes zero requests; so does HF_HUB_OFFLINE=1.
    hub.log.length = 0;
    expect(await embed('org/kobert-tiny', { cacheDir: cache })).toEqual(expected);
    expect(hub.log).toEqual([]);
    process.env.HF_HUB_OFFLINE = '1';
    process.env.HF_HUB_CACHE = cache;
    expect(await embed('org/kobert-tiny')).toEqual(expected);
    expect(await embed('org/kobert-tiny', { revision: commit })).toEqual(expected);
    expect(hub.log).toEqual([]);
    // A snapshot without .no_exist markers (as `huggingface-cli download` leaves it) needs no request either.
    delete process.env.HF_HUB_OFFLINE;
    fs.rmSync(path.join(repo, '.no_exist'), { recursive: true });
    expect(await embed('org/kobert-tiny')).toEqual(expected);
    expect(hub.log).toEqual([]);
  });

  test('HF_HUB_OFFLINE=1: a model that is not cached fails clearly without any request', async () => {
    const cache = newCache();
    process.env.HF_HUB_OFFLINE = '1';
    await expect(SentenceTransformer.load('org/kobert-tiny', { cacheDir: cache })).rejects.toThrow(
      /org\/kobert-tiny: not in the Hugging Face cache .* HF_HUB_OFFLINE=1 .*huggingface-cli download org\/kobert-tiny/,
    );
    // A snapshot with a file missing: the error names the file.
    delete process.env.HF_HUB_OFFLINE;
    await snapshotDownload('org/kobert-tiny', { cacheDir: cache });
    const { commit } = hub.repos.get('org/kobert-tiny')!;
    fs.rmSync(path.join(cache, 'models--org--kobert-tiny', 'snapshots', commit, '1_Pooling', 'config.json'));
    hub.log.length = 0;
    await expect(snapshotDownload('org/kobert-tiny', { cacheDir: cache, localFilesOnly: true })).rejects.toThrow(
      /"1_Pooling\/config\.json" of snapshot [0-9a-f]{40} is not in the cache .*HF_HUB_OFFLINE=1/,
    );
    expect(hub.log).toEqual([]);
    // Online again, only the missing file is fetched.
    await snapshotDownload('org/kobert-tiny', { cacheDir: cache });
    expect(hub.resolves().map((l) => l.url)).toEqual([`/org/kobert-tiny/resolve/${commit}/1_Pooling/config.json`]);
  });

  test('pytorch_model.bin, Dense and Normalize modules, the file-list API and HF_TOKEN as a Bearer header', async () => {
    const cache = newCache();
    hub.behaviour = { listing: true, token: 'hf_secret' };
    const expected = await embed(DISTIL);
    await expect(SentenceTransformer.load('org/distil', { cacheDir: cache })).rejects.toThrow(/access denied .*HF_TOKEN/);
    process.env.HF_TOKEN = 'hf_secret';
    hub.log.length = 0;
    expect(await embed('org/distil', { cacheDir: cache })).toEqual(expected);
    const toApi = hub.log.filter((l) => !l.url.startsWith('/blob-store/'));
    expect(toApi.length).toBeGreaterThan(0);
    expect(toApi.every((l) => l.auth === 'Bearer hf_secret')).toBe(true);
    // With the file list, files the revision lacks are not even asked for.
    expect(hub.resolves().some((l) => l.url.endsWith('model.safetensors'))).toBe(false);
    const { commit } = hub.repos.get('org/distil')!;
    const snap = path.join(cache, 'models--org--distil', 'snapshots', commit);
    expect(fs.existsSync(path.join(snap, '2_Dense', 'pytorch_model.bin'))).toBe(true);
    hub.log.length = 0;
    expect(await embed('org/distil', { cacheDir: cache })).toEqual(expected);
    expect(hub.log).toEqual([]);
  });

  test('a truncated body, a wrong size or a wrong sha256 → error, nothing left in snapshots or as a temp file', async () => {
    const { commit } = hub.repos.get('org/kobert-tiny')!;
    const weights = '0_KoBertTransformer/model.safetensors';
    const cases: [Behaviour, RegExp][] = [
      [{ truncate: new Set([weights]) }, /model\.safetensors.*(closed before|aborted|size mismatch|ECONNRESET)/],
      [{ wrongSize: new Set([weights]) }, /model\.safetensors.*size mismatch/],
      [{ wrongSha: new Set([weights]) }, /model\.safetensors.*sha256 mismatch/],
    ];
    for (const [behaviour, re] of cases) {
      const cache = newCache();
      hub.behaviour = behaviour;
      await expect(SentenceTransformer.load('org/kobert-tiny', { cacheDir: cache })).rejects.toThrow(re);
      const repo = path.join(cache, 'models--org--kobert-tiny');
      expect(fs.existsSync(path.join(repo, 'snapshots', commit, weights))).toBe(false);
      expect(listFiles(path.join(repo, 'blobs')).filter((f) => f.includes('incomplete') || f === sha256(hub.repos.get('org/kobert-tiny')!.files.get(weights)!))).toEqual([]);
      // The next, healthy attempt completes the snapshot.
      hub.behaviour = {};
      await snapshotDownload('org/kobert-tiny', { cacheDir: cache });
      expect(fs.existsSync(path.join(repo, 'snapshots', commit, weights))).toBe(true);
    }
  });

  test('hostile names: modules.json paths leaving the folder, server file lists and ETags, revisions with separators', async () => {
    const cache = newCache();
    await expect(SentenceTransformer.load('org/evil-path', { cacheDir: cache })).rejects.toThrow(
      /org\/evil-path: modules\.json: entry 0: field "path": "\.\.\/\.\.\/etc\/passwd" contains "\.\."; refused/,
    );
    await expect(SentenceTransformer.load('org/evil-abs', { cacheDir: cache })).rejects.toThrow(
      /org\/evil-abs: modules\.json: entry 0: field "path": "\/etc" is an absolute path; refused/,
    );
    expect(hub.resolves().every((l) => l.url.endsWith('/modules.json'))).toBe(true);

    hub.behaviour = { listing: true, extraSiblings: ['../outside.txt'] };
    await expect(snapshotDownload('org/kobert-tiny', { cacheDir: newCache() })).rejects.toThrow(/siblings\[\d+\]\.rfilename: "\.\.\/outside\.txt" contains "\.\."/);
    hub.behaviour = { etagOverride: '../../../escape' };
    await expect(snapshotDownload('org/kobert-tiny', { cacheDir: newCache() })).rejects.toThrow(/refusing ETag "\.\.\/\.\.\/\.\.\/escape"/);

    hub.log.length = 0;
    for (const revision of ['refs/pr/1', '../main', 'a\\b', 'x\0y']) {
      await expect(SentenceTransformer.load('org/kobert-tiny', { cacheDir: cache, revision })).rejects.toThrow(/not a valid branch, tag or commit name/);
    }
    expect(hub.log).toEqual([]);

    for (const bad of ['/etc/passwd', '../x', 'a/../../x', 'a\\b', 'a\0b', 'C:/x', '']) {
      expect(() => checkRepoPath(bad, 'config.json: field "x"')).toThrow(/config\.json: field "x": .* refused/);
    }
    expect(checkRepoPath('./1_Pooling//config.json', 'w')).toBe('1_Pooling/config.json');
  });

  test('a required file answered 404 is a clear error; a revision the server lacks too', async () => {
    const cache = newCache();
    await expect(SentenceTransformer.load('org/no-pooling', { cacheDir: cache })).rejects.toThrow(
      /org\/no-pooling: required file "1_Pooling\/config\.json" is missing from revision "main" \(404/,
    );
    await expect(SentenceTransformer.load('org/kobert-tiny', { cacheDir: cache, revision: 'v9' })).rejects.toThrow(/revision "v9" not found/);
    await expect(SentenceTransformer.load('org/missing', { cacheDir: cache })).rejects.toThrow(/org\/missing: repository not found/);
  });

  test('an unreachable endpoint: the error names the cache miss and the endpoint', async () => {
    const dead = http.createServer();
    await new Promise<void>((r) => dead.listen(0, '127.0.0.1', r));
    const port = (dead.address() as AddressInfo).port;
    await new Promise<void>((r) => dead.close(() => r()));
    process.env.HF_ENDPOINT = `http://127.0.0.1:${port}`;
    await expect(SentenceTransformer.load('org/kobert-tiny', { cacheDir: newCache() })).rejects.toThrow(
      /org\/kobert-tiny: not in the Hugging Face cache .* downloading "modules\.json" from http:\/\/127\.0\.0\.1:\d+ failed: .*ECONNREFUSED/,
    );
  });
});
