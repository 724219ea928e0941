/**
 * One file from a Hugging Face `/resolve/` URL into the cache's blobs/ folder, the way huggingface_hub does it:
 * the first response (before any redirect) carries X-Repo-Commit and the file's ETag (X-Linked-Etag and
 * X-Linked-Size for LFS files, whose body lives behind a redirect); the body goes to a temporary file in blobs/
 * that is renamed to blobs/<etag> only once its size (and, where the etag is a sha256, its hash) is checked.
 * Node's own http/https only; redirects are followed by hand (relative and absolute, bounded), and the
 * Authorization header is only sent to the endpoint's own origin.
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as http from 'http';
import * as https from 'https';
import * as path from 'path';
import { SingleBar, Presets } from 'cli-progress';

export interface HttpOptions {
  token?: string;
  /** Idle socket timeout in ms (connect and between body chunks). */
  timeoutMs: number;
  maxRedirects: number;
  userAgent: string;
  /** Draw a progress bar on stderr (only when stderr is a TTY). */
  progress: boolean;
  agents: { http: http.Agent; https: https.Agent };
  /** Called once per HTTP request sent (tests count them). */
  onRequest?: (method: string, url: string) => void;
}

/** An HTTP answer other than 200 / a redirect, with what the Hub says about it. */
export class HubHttpError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly errorCode: string | undefined,
    readonly commit: string | undefined,
  ) {
    super(message);
    this.name = 'HubHttpError';
  }
}

export interface BlobResult {
  commit: string;
  etag: string;
  blob: string;
  /** False when blobs/<etag> was already there (the body was not downloaded). */
  downloaded: boolean;
}

const COMMIT = /^[0-9a-f]{40}$/;
const SHA256 = /^[0-9a-f]{64}$/;
const SAFE_ETAG = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}$/;

function header(res: http.IncomingMessage, name: string): string | undefined {
  const v = res.headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

/** huggingface_hub's etag normalisation: drop the weak prefix and the quotes. */
export function normalizeEtag(raw: string | undefined): string | undefined {
  if (raw === undefined) return undefined;
  return raw.replace(/^W\//, '').replace(/^"+|"+$/g, '');
}

function parseSize(raw: string | undefined, what: string, url: string): number | undefined {
  if (raw === undefined) return undefined;
  if (!/^\d{1,16}$/.test(raw.trim())) throw new Error(`${url}: header ${what} "${raw}" is not a byte count`);
  return Number(raw.trim());
}

function send(method: string, url: URL, headers: Record<string, string>, opts: HttpOptions): Promise<{ req: http.ClientRequest; res: http.IncomingMessage }> {
  return new Promise((resolve, reject) => {
    const mod = url.protocol === 'https:' ? https : http;
    const agent = url.protocol === 'https:' ? opts.agents.https : opts.agents.http;
    opts.onRequest?.(method, url.toString());
    const req = mod.request(url, { method, headers, agent }, (res) => resolve({ req, res }));
    req.setTimeout(opts.timeoutMs, () => req.destroy(new Error(`no answer for ${opts.timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

async function readSmallBody(res: http.IncomingMessage, limit = 4096): Promise<string> {
  const chunks: Buffer[] = [];
  let n = 0;
  try {
    for await (const c of res) {
      if (n < limit) chunks.push(c as Buffer);
      n += (c as Buffer).length;
      if (n >= limit) break;
    }
  } catch {
    /* the message is best effort */
  }
  res.destroy();
  return Buffer.concat(chunks).toString('utf8').slice(0, limit).replace(/\s+/g, ' ').trim();
}

/** GET a small JSON document (the revision's file list); undefined on any non-200 answer. */
export async function getJson(url: string, opts: HttpOptions): Promise<unknown | undefined> {
  let cur = new URL(url);
  const origin = cur.origin;
  for (let hop = 0; hop <= opts.maxRedirects; hop++) {
    const headers: Record<string, string> = { 'user-agent': opts.userAgent, accept: 'application/json' };
    if (opts.token && cur.origin === origin) headers.authorization = `Bearer ${opts.token}`;
    const { res } = await send('GET', cur, headers, opts);
    const loc = header(res, 'location');
    if (res.statusCode && res.statusCode >= 300 && res.statusCode < 400 && loc) {
      res.resume();
      cur = nextUrl(cur, loc);
      continue;
    }
    if (res.statusCode !== 200) {
      res.resume();
      return undefined;
    }
    const chunks: Buffer[] = [];
    let n = 0;
    for await (const c of res) {
      n += (c as Buffer).length;
      if (n > 32 << 20) throw new Error(`${url}: file list larger than 32 MiB`);
      chunks.push(c as Buffer);
    }
    try {
      return JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      return undefined;
    }
  }
  throw new Error(`${url}: more than ${opts.maxRedirects} redirects`);
}

function nextUrl(cur: URL, location: string): URL {
  let u: URL;
  try {
    u = new URL(location, cur);
  } catch {
    throw new Error(`${cur}: redirect to an invalid location "${location}"`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error(`${cur}: redirect to a non-HTTP location "${location}"`);
  return u;
}

function fmtMB(n: number): string {
  return (n / 1e6).toFixed(n < 1e7 ? 2 : 1);
}

/**
 * Downloads `url` (a /resolve/ URL) into `blobsDir`. `expectCommit`, when given, must equal the answer's
 * X-Repo-Commit. Returns the commit, the etag and the blob's path. Throws HubHttpError for HTTP failures
 * (404s included) and Error for everything else; on any failure no partial file is left behind.
 */
export async function downloadBlob(url: string, blobsDir: string, label: string, opts: HttpOptions, expectCommit?: string): Promise<BlobResult> {
  let cur = new URL(url);
  const origin = cur.origin;
  let commit: string | undefined;
  let etag: string | undefined;
  let linkedSize: number | undefined;
  for (let hop = 0; ; hop++) {
    const headers: Record<string, string> = { 'user-agent': opts.userAgent, 'accept-encoding': 'identity' };
    if (opts.token && cur.origin === origin) headers.authorization = `Bearer ${opts.token}`;
    const { res } = await send('GET', cur, headers, opts);
    const status = res.statusCode ?? 0;
    if (hop === 0) {
      // The resolve endpoint's own answer describes the file; a CDN behind a redirect does not know the repo.
      commit = header(res, 'x-repo-commit');
      etag = normalizeEtag(header(res, 'x-linked-etag') ?? header(res, 'etag'));
      linkedSize = parseSize(header(res, 'x-linked-size'), 'X-Linked-Size', url);
    }
    if (status >= 300 && status < 400 && header(res, 'location')) {
      res.resume();
      if (hop === 0 && commit && etag && SAFE_ETAG.test(etag) && fs.existsSync(path.join(blobsDir, etag))) {
        // The blob is already in the cache (another revision or a Python download): no need to follow.
        return { commit: checkCommit(commit, url, expectCommit), etag, blob: path.join(blobsDir, etag), downloaded: false };
      }
      if (hop >= opts.maxRedirects) throw new Error(`${url}: more than ${opts.maxRedirects} redirects`);
      cur = nextUrl(cur, header(res, 'location')!);
      continue;
    }
    if (status !== 200) {
      const body = await readSmallBody(res);
      const code = header(res, 'x-error-code');
      const c = commit && COMMIT.test(commit) ? commit : undefined;
      throw new HubHttpError(`${cur}: HTTP ${status}${code ? ` (${code})` : ''}${body ? `: ${body.slice(0, 300)}` : ''}`, status, code, c);
    }
    if (etag === undefined) etag = normalizeEtag(header(res, 'etag'));
    if (commit === undefined) {
      res.destroy();
      throw new Error(
        `${url}: the answer has no X-Repo-Commit header; HF_ENDPOINT does not look like a Hugging Face Hub ` +
          '(a proxy or captive portal in between?)',
      );
    }
    const c = checkCommit(commit, url, expectCommit);
    if (!etag) {
      res.destroy();
      throw new Error(`${url}: the answer has no ETag / X-Linked-Etag header, so the file cannot be stored in the cache`);
    }
    if (!SAFE_ETAG.test(etag) || etag.includes('..')) {
      res.destroy();
      throw new Error(`${url}: refusing ETag "${etag.slice(0, 80)}" from the server as a blob file name (only letters, digits, . _ -)`);
    }
    const blob = path.join(blobsDir, etag);
    if (fs.existsSync(blob)) {
      res.destroy();
      return { commit: c, etag, blob, downloaded: false };
    }
    const contentLength = parseSize(header(res, 'content-length'), 'Content-Length', cur.toString());
    if (linkedSize !== undefined && contentLength !== undefined && linkedSize !== contentLength) {
      res.destroy();
      throw new Error(`${url}: size mismatch: X-Linked-Size says ${linkedSize} bytes but Content-Length says ${contentLength}`);
    }
    const expected = linkedSize ?? contentLength;
    await writeBody(res, blob, etag, expected, label, url, opts);
    return { commit: c, etag, blob, downloaded: true };
  }
}

function checkCommit(commit: string, url: string, expect?: string): string {
  if (!COMMIT.test(commit)) throw new Error(`${url}: X-Repo-Commit "${commit.slice(0, 80)}" is not a 40-hex commit hash`);
  if (expect && commit !== expect) throw new Error(`${url}: the server answered for commit ${commit}, expected ${expect}`);
  return commit;
}

async function writeBody(
  res: http.IncomingMessage,
  blob: string,
  etag: string,
  expected: number | undefined,
  label: string,
  url: string,
  opts: HttpOptions,
): Promise<void> {
  fs.mkdirSync(path.dirname(blob), { recursive: true });
  const tmp = `${blob}.${process.pid}-${crypto.randomBytes(4).toString('hex')}.incomplete`;
  const hash = SHA256.test(etag) ? crypto.createHash('sha256') : undefined;
  const bar =
    opts.progress && process.stderr.isTTY
      ? new SingleBar(
          { stream: process.stderr, format: `${label} |{bar}| {percentage}% {done}/{all} MB`, hideCursor: true, clearOnComplete: false },
          Presets.shades_classic,
        )
      : undefined;
  let n = 0;
  let fh: fs.promises.FileHandle | undefined;
  try {
    fh = await fs.promises.open(tmp, 'wx', 0o644);
    bar?.start(expected ?? 0, 0, { done: fmtMB(0), all: expected !== undefined ? fmtMB(expected) : '?' });
    for await (const chunk of res) {
      const b = chunk as Buffer;
      n += b.length;
      if (expected !== undefined && n > expected) throw new Error(`${url}: size mismatch: more than the announced ${expected} bytes`);
      hash?.update(b);
      await fh.write(b);
      bar?.update(n, { done: fmtMB(n) });
    }
    // A connection cut short ends some streams without an error: the byte count is the check.
    if (!res.complete) throw new Error(`${url}: the connection closed before the body was complete (${n} bytes received)`);
    if (expected !== undefined && n !== expected) throw new Error(`${url}: size mismatch: expected ${expected} bytes, got ${n}`);
    if (hash) {
      const got = hash.digest('hex');
      if (got !== etag) throw new Error(`${url}: sha256 mismatch: the ETag says ${etag}, the body hashes to ${got}`);
    }
    await fh.sync();
    await fh.close();
    fh = undefined;
    await fs.promises.rename(tmp, blob);
  } catch (e) {
    res.destroy();
    await fh?.close().catch(() => undefined);
    await fs.promises.rm(tmp, { force: true }).catch(() => undefined);
    const msg = (e as Error).message;
    throw new Error(msg.startsWith(url) ? msg : `${url}: download failed after ${n} bytes: ${msg}`);
  } finally {
    bar?.stop();
  }
}
