/**
 * Hugging Face Hub ids ("org/name") resolved from the local Hugging Face cache, the layout huggingface_hub
 * writes: <cache>/models--org--name/refs/<revision> holds a commit hash, and snapshots/<commit>/ holds the
 * files (links into blobs/). The cache is HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub,
 * so models Python already downloaded are reused. Nothing is downloaded here: a model that is not cached is an
 * error that says how to get the files.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

export interface HubOptions {
  revision?: string;
  cacheDir?: string;
}

const REPO_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,95}(\/[A-Za-z0-9][A-Za-z0-9._-]{0,95})?$/;

export function hubCacheDir(cacheDir?: string): string {
  if (cacheDir) return cacheDir;
  if (process.env.HF_HUB_CACHE) return process.env.HF_HUB_CACHE;
  if (process.env.HF_HOME) return path.join(process.env.HF_HOME, 'hub');
  return path.join(os.homedir(), '.cache', 'huggingface', 'hub');
}

export function isHubId(s: string): boolean {
  return REPO_ID.test(s) && !s.includes('..');
}

/** The snapshot folder of a cached Hub model; throws a message with the fix when it is not cached. */
export function resolveModelDir(id: string, options: HubOptions = {}): string {
  if (!isHubId(id)) throw new Error(`${id}: not a local folder and not a Hugging Face model id ("org/name")`);
  const revision = options.revision ?? 'main';
  if (!/^[A-Za-z0-9._\-/]{1,200}$/.test(revision) || revision.split('/').includes('..')) {
    throw new Error(`revision ${JSON.stringify(revision)} is not a valid branch, tag or commit name`);
  }
  const cache = hubCacheDir(options.cacheDir);
  const repo = path.join(cache, `models--${id.replace(/\//g, '--')}`);
  const howTo =
    `download it once where there is network access, e.g. \`huggingface-cli download ${id}\` or ` +
    `\`python -c "from sentence_transformers import SentenceTransformer; SentenceTransformer('${id}')"\`, ` +
    `and point HF_HUB_CACHE / HF_HOME (or options.cacheDir) at that cache; or pass the path of a local model folder`;
  if (!fs.existsSync(repo)) throw new Error(`${id}: not in the Hugging Face cache (${repo} does not exist); ${howTo}`);
  let commit = revision;
  const ref = path.join(repo, 'refs', revision);
  if (fs.existsSync(ref) && fs.statSync(ref).isFile()) {
    commit = fs.readFileSync(ref, 'utf8').trim();
    if (!/^[0-9a-f]{40}$/.test(commit)) throw new Error(`${ref}: does not hold a commit hash`);
  } else if (!/^[0-9a-f]{40}$/.test(revision)) {
    throw new Error(`${id}: revision "${revision}" is not in the cache (${ref} not found); ${howTo}`);
  }
  const snap = path.join(repo, 'snapshots', commit);
  if (!fs.existsSync(snap) || !fs.statSync(snap).isDirectory()) {
    throw new Error(`${id}: snapshot ${commit} is missing from the cache (${snap}); ${howTo}`);
  }
  return snap;
}
