"""Build tasks/vllm.yaml and tasks/sglang.yaml from the upstream ISO-Bench data, deterministically.

    python tasks/build_iso_tasks.py ../shared/upstream-samples

Inputs (SAMPLES_DIR, see its SOURCES.md): mappings/vllm_oh_mapping.json (38 vLLM tasks),
vllm_39_benchmarkable_commits.txt (the 39; 015069b0 is missing from the mapping and is recovered from
mappings/benchmark_mode_mapping.json), mappings/sglang_oh_mapping.json (15 SGLang tasks).

Every change made to an upstream record is a normalization: it is printed, written as a comment above the
task and in the task's `normalizations:` list, which `isobench tasks validate` reports as warnings.
Nothing is changed silently. The description is built from the workload (never the commit message,
which names the fix).
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import yaml

from isobench_ray.engines import engine_named
from isobench_ray.tasks import default_description

HERE = Path(__file__).resolve().parent

# Facts about the engines that the normalizations rest on (each one is cited in the note it produces).
RANDOM_DATASET_SINCE = "2024-06-01"  # vLLM benchmark_serving.py gained --dataset-name random in mid-2024

# Per-task normalizations: (what changes, why). Applied by `_normalize_task`, each one said.
MODEL_SWAPS = {
    "ad8d696a": ("meta-llama/Meta-Llama-3-8B-Instruct",
                 "Llama 3.1 (rope_scaling type 'llama3') needs vLLM >= 0.5.3; this commit is vLLM 0.4.1 (the "
                 "record's vllm_pypi_version), which stops on its config; Llama 3 8B Instruct is the same size and runs there"),
    "015069b0": ("Qwen/Qwen3-8B",
                 "the pool record names Qwen/Qwen3-7B-Instruct, which Qwen never released (Qwen3 dense sizes: 0.6B, 1.7B, "
                 "4B, 8B, 14B, 32B); Qwen/Qwen3-8B is the nearest real model"),
}
WORKLOAD_NOTES = {
    "015069b0": "the change is in the Qwen3 reasoning parser, which runs only for chat completions on a server started "
                "with --reasoning-parser; this completions workload does not reach it: expect no measurable speedup "
                "(kept because it is one of the 39; read its results as a noise check)",
    "b690e348": "the change is in the Mamba2 layers: only a Mamba2 hybrid (this Bamba model) reaches it; every arm "
                "runs this same model and command (no per-arm model or command rewrites)",
    "296f927f": "the change is in the Mamba2 layers: only a Mamba2 hybrid (this Bamba model) reaches it; every arm "
                "runs this same model and command (no per-arm model or command rewrites)",
    "fe66b347": "the change is in the Mamba2 layers: only a Mamba2 hybrid (this Bamba model) reaches it; every arm "
                "runs this same model and command (no per-arm model or command rewrites)",
    "e7b20426": "Llama-4-Maverick-17B-128E is about 400B parameters (about 800 GB in bf16): 4 GPUs of 80 GB cannot "
                "hold it; the record's tp 4 is kept, but the task needs 8 x 141 GB or an FP8 checkpoint to run",
    "6a417b86": "the change is in the Neuron (AWS Inferentia) code path; on a CUDA GPU this workload does not reach it",
    "e3580537": "the upstream results ran this model under its former name neuralmagic/Meta-Llama-3-8B-Instruct-FP8 "
                "(the organisation was renamed; the hub redirects)",
}
# vLLM benchmark_throughput.py before 2025 has no --dataset-name; ShareGPT came from a --dataset file.
THROUGHPUT_SYNTHETIC = {"9474e89b": ["--input-len", "256", "--output-len", "256"]}
# benchmark_serving.py without the random dataset (before mid-2024): the sonnet text ships in benchmarks/.
SONNET = ["--dataset-name", "sonnet", "--dataset-path", "benchmarks/sonnet.txt"]


def _dates(samples: Path) -> dict[str, tuple[str, str]]:
    """short commit -> (date, subject) from vllm_39_benchmarkable_commits.txt (the subject is never written out)."""
    out = {}
    for line in (samples / "vllm_39_benchmarkable_commits.txt").read_text().splitlines():
        parts = [p.strip() for p in line.split("|")]
        if len(parts) == 3 and not line.startswith("#"):
            out[parts[0]] = (parts[1], parts[2])
    return out


def _pop_option(argv: list[str], *names: str) -> str | None:
    """Remove `--name value` (or `--name=value`) from argv; return the last value."""
    value, i = None, 0
    while i < len(argv):
        flag = argv[i].split("=", 1)[0].replace("_", "-")
        if flag in names:
            if "=" in argv[i]:
                value = argv[i].split("=", 1)[1]
                del argv[i]
            else:
                value = argv[i + 1] if i + 1 < len(argv) else None
                del argv[i:i + 2]
        else:
            i += 1
    return value


def _has(argv: list[str], name: str) -> bool:
    return any(a.split("=", 1)[0].replace("_", "-") == name for a in argv)


def _normalize_vllm(key: str, rec: dict, date: str | None, notes: list[str]) -> tuple[str, str]:
    command, model = rec["perf_command"], rec["model"]
    env_and_argv = shlex.split(command)
    env = [t for t in env_and_argv if "=" in t.split(" ")[0] and not t.startswith("-") and t.split("=")[0].isupper()]
    argv = env_and_argv[len(env):]
    if key in MODEL_SWAPS:
        new_model, why = MODEL_SWAPS[key]
        notes.append(f"model {model} -> {new_model}: {why}")
        argv = [new_model if a == model else a for a in argv]
        model = new_model
    script = next((a for a in argv[1:] if not a.startswith("-")), "") if argv and argv[0].startswith("python") else " ".join(argv[:3])
    if script.endswith("benchmark_serving.py") or script == "vllm bench serve":
        in_len, out_len = _pop_option(argv, "--input-len"), _pop_option(argv, "--output-len")
        if in_len or out_len:
            notes.append(f"--input-len/--output-len are not options of the serving client (argparse stops): "
                         f"they become --random-input-len {in_len or 'default'} / --random-output-len {out_len or 'default'} of the random dataset")
        dataset = _pop_option(argv, "--dataset-name")
        path = _pop_option(argv, "--dataset-path", "--dataset")
        needs_file = (dataset in (None, "sharegpt") and script.endswith("benchmark_serving.py")) or dataset == "sharegpt" or path
        if needs_file and not (dataset == "random"):
            was = " ".join(x for x in (f"--dataset-name {dataset}" if dataset else "(default dataset sharegpt)",
                                       f"--dataset-path {path}" if path else "") if x)
            if date and date < RANDOM_DATASET_SINCE:
                argv += SONNET
                notes.append(f"{was} -> {' '.join(SONNET)}: ShareGPT is a file the task does not ship (the client stops "
                             f"without --dataset-path), and this script predates the random dataset; sonnet.txt ships with vLLM's benchmarks/")
            else:
                argv += ["--dataset-name", "random"]
                notes.append(f"{was} -> --dataset-name random: ShareGPT is a file the task does not ship (the client stops "
                             f"without --dataset-path); the random dataset needs none (its default lengths unless given)")
        elif dataset:
            argv += ["--dataset-name", dataset]
        elif script == "vllm bench serve" and not path:
            argv += ["--dataset-name", "random"]
            notes.append("--dataset-name random made explicit: `vllm bench serve` defaulted to sharegpt (a file the task "
                         "does not ship) before it defaulted to random; the command's --random-* lengths show the intent")
        if path and not needs_file:
            argv += ["--dataset-path", path]
        if in_len:
            argv += ["--random-input-len", in_len]
        if out_len:
            argv += ["--random-output-len", out_len]
    if key in THROUGHPUT_SYNTHETIC:
        dataset = _pop_option(argv, "--dataset-name")
        argv += THROUGHPUT_SYNTHETIC[key]
        notes.append(f"--dataset-name {dataset} -> {' '.join(THROUGHPUT_SYNTHETIC[key])}: benchmark_throughput.py of 2024-03 has no "
                     f"--dataset-name (argparse stops) and reads ShareGPT only from a --dataset file the task does not ship; "
                     f"synthetic prompts of a fixed length instead")
    tp = rec.get("tp")
    if tp and int(tp) > 1 and not any(_has(argv, f) for f in ("-tp", "--tp", "--tensor-parallel-size")):
        argv += ["--tensor-parallel-size", str(tp)]
        notes.append(f"--tensor-parallel-size {tp} added from the record's tp field (the command lacked it)")
    return shlex.join(env + argv) if not env else " ".join(env) + " " + shlex.join(argv), model


def _kind_note(rec: dict, kind: str, notes: list[str]) -> None:
    flags = [k for k in ("serving", "latency", "throughput") if rec.get(f"has_{k}")]
    if flags and flags != [kind]:
        notes.append(f"record says has_{flags[0]}, but the command is a {kind} benchmark; kind {kind}")


def _task(key: str, repo: str, rec: dict, command: str, model: str, notes: list[str], date: str | None) -> dict:
    engine = engine_named(repo)
    cmd = engine.analyze(command, model=model)
    _kind_note(rec, cmd.kind, notes)
    # What the loader will do on its own (server flags moved, --model added, ...): said here too.
    loader = [f.message for f in cmd.findings if f.severity == "warning"]
    errors = [f.message for f in cmd.findings if f.severity == "error"]
    task = {
        "id": f"{repo}-{key}",
        "repo": repo,
        "human_commit": rec.get("human_commit_full") or rec.get("commit_full"),
        "parent_commit": rec["parent_commit"],
        "model": model,
        "description": default_description(repo, cmd.command),
        "benchmark": {"kind": cmd.kind, "command": command, **({"gpus": cmd.gpus} if cmd.gpus > 1 else {})},
    }
    if notes:
        task["normalizations"] = list(notes)
    return {"task": task, "loader": loader, "errors": errors, "date": date}


def _vllm(samples: Path) -> list[dict]:
    mapping = json.loads((samples / "mappings" / "vllm_oh_mapping.json").read_text())
    pool = json.loads((samples / "mappings" / "benchmark_mode_mapping.json").read_text())
    dates = _dates(samples)
    out = []
    for key in dates:  # the 39, in the list's order
        notes: list[str] = []
        rec = mapping.get(key)
        if rec is None:
            rec = dict(pool[key])
            notes.append("missing from vllm_oh_mapping.json upstream; recovered from benchmark_mode_mapping.json "
                         "(commit, parent, model, perf command)")
        if not rec.get("parent_commit"):
            raise SystemExit(f"{key}: no parent commit in the upstream data")
        date = dates[key][0]
        command, model = _normalize_vllm(key, rec, date, notes)
        if key in WORKLOAD_NOTES:
            notes.append(f"workload note: {WORKLOAD_NOTES[key]}")
        pooled = pool.get(key)
        if pooled and key in mapping and pooled.get("perf_command") and pooled["perf_command"] != rec["perf_command"]:
            notes.append(f"note (no change): the 96-commit pool had another command: {pooled['perf_command']}")
        out.append(_task(key, "vllm", rec, command, model, notes, date))
    return out


def _sglang(samples: Path) -> list[dict]:
    mapping = json.loads((samples / "mappings" / "sglang_oh_mapping.json").read_text())
    out = []
    for key, rec in mapping.items():
        notes: list[str] = []
        command = rec["perf_command"]
        if "bench_serving" in command and "--dataset-name" not in command:
            notes.append("workload note: bench_serving's default dataset is ShareGPT, which SGLang downloads from the "
                         "Hugging Face hub on first use: the benchmark needs the network, or the file in its cache")
        out.append(_task(key, "sglang", rec, command, rec["model"], notes, None))
    return out


# Where each commit's engine build comes from: vLLM publishes a wheel of every main-branch commit at
# wheels.vllm.ai (docs/running-vllm-suite.md), from about v0.5.3 (July 2024); an older commit's URL answers
# 404 and its attempts end as error/build_missing, named before any GPU time. SGLang publishes no per-commit
# build: its tasks need the user's own (`python`, `image`, or a `setup_command`).
VLLM_WHEEL = "https://wheels.vllm.ai/{commit}/vllm-1.0.0.dev-cp38-abi3-manylinux1_x86_64.whl"
WHEELS_FROM = "2024-07-23"  # v0.5.3
REPOS = {"vllm": {"url": "https://github.com/vllm-project/vllm.git", "wheel": VLLM_WHEEL}}


def _build_note(repo: str, date: str | None) -> str | None:
    if repo != "vllm":
        return None
    if date and date < WHEELS_FROM:
        return (f"build: this commit ({date}) predates vLLM's per-commit wheels (from about v0.5.3, {WHEELS_FROM}): "
                f"expect error/build_missing unless you give it a build of your own (docs/running-vllm-suite.md)")
    return None


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(str, lambda d, s: d.represent_scalar("tag:yaml.org,2002:str", s, style="|" if "\n" in s else None))


def _write(path: Path, suite: str, built: list[dict], header: str, repos: dict | None = None) -> None:
    lines = ["# Generated by tasks/build_iso_tasks.py from the upstream ISO-Bench data; do not edit by hand.",
             f"# {header}", "# Every change to an upstream record is listed in the task's `normalizations`",
             "# (reported by `isobench tasks validate`), and the loader's own changes as `loader:` comments.",
             f"suite: {suite}"]
    if repos:
        lines += ["# Each commit's engine: its published wheel, installed per commit on each node (--sandbox local;",
                  "# for --sandbox docker give repos.vllm.image instead, docs/running-vllm-suite.md)"]
        lines += yaml.dump({"repos": repos}, Dumper=_Dumper, sort_keys=False, width=120).rstrip("\n").splitlines()
    lines.append("tasks:")
    for b in built:
        task = b["task"]
        lines.append("")
        if note := _build_note(task["repo"], b.get("date")):
            lines.append(f"  # {note}")
        for note in task.get("normalizations", []):
            lines.append(f"  # NORMALIZED: {note}")
        for note in b["loader"]:
            lines.append(f"  # loader: {note}")
        dumped = yaml.dump([task], Dumper=_Dumper, sort_keys=False, width=120, allow_unicode=True)
        lines += ["  " + ln if ln else ln for ln in dumped.rstrip("\n").splitlines()]
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__)
        return 2
    samples = Path(argv[1])
    vllm, sglang = _vllm(samples), _sglang(samples)
    for _name, built in (("vllm", vllm), ("sglang", sglang)):
        for b in built:
            t = b["task"]
            for note in t.get("normalizations", []):
                print(f"{t['id']}: NORMALIZED {note}")
            for note in b["loader"]:
                print(f"{t['id']}: loader {note}")
            for note in b["errors"]:
                print(f"{t['id']}: ERROR {note}")
    _write(HERE / "vllm.yaml", "iso-bench-vllm", vllm,
           f"{len(vllm)} vLLM tasks: the 39 of vllm_39_benchmarkable_commits.txt (38 from vllm_oh_mapping.json, 015069b0 from the pool)",
           REPOS)
    _write(HERE / "sglang.yaml", "iso-bench-sglang", sglang, f"{len(sglang)} SGLang tasks from sglang_oh_mapping.json")
    errors = sum(len(b["errors"]) for b in vllm + sglang)
    print(f"wrote {len(vllm)} vLLM and {len(sglang)} SGLang tasks; "
          f"{sum(len(b['task'].get('normalizations', [])) for b in vllm + sglang)} normalizations; {errors} errors left")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
