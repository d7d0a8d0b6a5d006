"""After the rounds, on the same slot: each arm's server answers fixed prompts greedily (and lm-eval where
configured), the outputs that scoring/correctness.py compares. Nothing here fails an arm."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from isobench_ray.engines import greedy_client
from isobench_ray.engines.scripts import PERF_DIR
from isobench_ray.schema import ARMS, Arm
from isobench_ray.stages.bench_context import BenchContext
from isobench_ray.text import log_tail
from isobench_ray.workspace import write_in_tree


def check_arms(ctx: BenchContext) -> dict[Arm, dict]:
    """Every verdict arm's ArmResult fields greedy_outputs, greedy_detail and accuracy."""
    # the probe and its prompts in each arm's io folder, which its sandbox mounts (the same path on both sides)
    # and its code could write in during the rounds: written without following a link it left there
    for arm in ARMS:
        write_in_tree(ctx.io[arm], "greedy_client.py", Path(greedy_client.__file__).read_bytes())
        write_in_tree(ctx.io[arm], "prompts.json", json.dumps(greedy_client.PROMPTS).encode())
    return {arm: _check(ctx, arm) for arm in ARMS}


def _check(ctx: BenchContext, arm: Arm) -> dict:
    """Greedy completions of fixed prompts from the arm's own server (and, where wanted, an lm-eval accuracy)."""
    settings, sandbox = ctx.settings, ctx.sandbox_of[arm]
    server_cpus, client_cpus = ctx.cores(True)
    ctx.ensure_clean_gpus(arm)
    server = ctx.launch(arm, f"{arm}.correctness.server.log", server_cpus)
    found: dict = {}
    left: tuple[str, ...] = ()
    try:
        if server.failure:
            return {"greedy_detail": f"the {arm} server did not start for the check: {server.failure[0].value}"}
        url = f"http://{settings.sandbox.host}:{server.port}/v1/completions"
        io = ctx.io[arm]
        out_file = io / "greedy.json"
        probe = shlex.join(["python", str(io / "greedy_client.py"), url, ctx.task.model or "default",
                            str(io / "prompts.json"), str(out_file), str(settings.correctness.greedy_max_tokens)])
        res = sandbox.exec(probe, cwd=ctx.trees[arm], timeout_s=600, log_path=ctx.log_dir / f"{arm}.greedy.log",
                           cpus=client_cpus)
        ctx.logs[f"bench/{arm}.greedy.log"] = log_tail(res.output)
        left = res.leftovers
        if res.ok:
            found["greedy_outputs"] = json.loads(sandbox.read_file(out_file))["outputs"]
        else:
            found["greedy_detail"] = f"the greedy probe of the {arm} arm failed: {res.tail(5)}"
        if settings.lm_eval.tasks and (ctx.slot.gpu_ids or settings.lm_eval.on_cpu):
            found.update(_lm_eval(ctx, arm, url))
    finally:
        ctx.logs[f"bench/{arm}.correctness.server.log"] = log_tail(server.stop())
        ctx.after(arm, left)
    return found


def _lm_eval(ctx: BenchContext, arm: Arm, url: str) -> dict:
    """lm-evaluation-harness against the arm's server, with the same tasks, limit, batch size and seed for
    every arm; the mean of each task's first reported accuracy."""
    s = ctx.settings
    out_dir = ctx.io[arm] / "lm_eval"
    # the datasets library caches what it loads under HF_HOME, which an arm may only read: the arm's io folder
    argv = ["env", f"HF_DATASETS_CACHE={ctx.io[arm] / 'hf_datasets'}", "python", "-m", "lm_eval", "--model", "local-completions", "--model_args",
            f"model={ctx.task.model},base_url={url},num_concurrent=8,max_retries=3,tokenized_requests=False",
            "--tasks", ",".join(s.lm_eval.tasks), "--batch_size", str(s.lm_eval.batch_size),
            "--seed", str(s.lm_eval.seed), "--output_path", str(out_dir)]
    if s.lm_eval.limit:
        argv += ["--limit", str(s.lm_eval.limit)]
    if s.lm_eval.include_path:
        argv += ["--include_path", s.lm_eval.include_path]  # absolute: the runner resolved it on the driver
    res = ctx.sandbox_of[arm].exec(shlex.join(argv), cwd=ctx.trees[arm], timeout_s=s.limits.bench_timeout_s or 7200,
                                   log_path=ctx.log_dir / f"{arm}.lm_eval.log")
    ctx.logs[f"bench/{arm}.lm_eval.log"] = log_tail(res.output)
    results = sorted(out_dir.glob("**/results_*.json"))
    if not res.ok or not results:
        return {"greedy_detail": f"lm-eval did not finish for the {arm} arm: {res.tail(5)}"}
    reported = results[-1].read_text()
    ctx.logs[f"bench/{arm}.lm_eval.json"] = reported  # as lm-eval wrote it: scores, configs, samples, versions
    scores = json.loads(reported)["results"]
    accuracies = [next(v for k, v in metrics.items() if isinstance(v, (int, float)) and "stderr" not in k
                       and k.split(",")[0] in ("exact_match", "acc", "acc_norm"))
                  for metrics in scores.values()]
    return {"accuracy": sum(accuracies) / len(accuracies)} if accuracies else {}


def check_equivalence(ctx: BenchContext) -> dict[Arm, dict]:
    """A script task's own check (engines/scripts.py): the baseline's run stores each test's reference
    (`--reference`), the harness copies what it stored into the human's and the agent's trees, and their runs
    compare against it (`--eqcheck`); a run that fails the comparison exits non-zero."""
    tree = ctx.trees["baseline"] / PERF_DIR
    before = set(tree.iterdir())
    reference = _equivalence_run(ctx, "baseline", "--reference")
    if not reference.ok:
        why = f"the baseline's reference run failed, nothing to compare against: {reference.tail(5)}"
        return {arm: {"greedy_detail": why} for arm in ARMS}
    stored = {p.name: p.read_bytes() for p in sorted(set(tree.iterdir()) - before)
              if p.is_file() and not p.is_symlink() and not p.name.endswith(".out")}
    found: dict[Arm, dict] = {"baseline": {"equivalent": True}}
    for arm in ("human", "agent"):
        for name, data in stored.items():
            write_in_tree(ctx.trees[arm], f"{PERF_DIR}/{name}", data)
        res = _equivalence_run(ctx, arm, "--eqcheck")
        found[arm] = {"equivalent": res.ok,
                      "greedy_detail": "" if res.ok else f"the {arm} arm fails the equivalence check: {res.tail(8)}"}
    return found


def _equivalence_run(ctx: BenchContext, arm: Arm, flag: str):
    ctx.ensure_clean_gpus(arm)
    result = ctx.results(arm) / f"{arm}.{flag.strip('-')}.json"
    res = ctx.sandbox_of[arm].exec(f"{ctx.bench.command} {shlex.join([str(result), flag])}", cwd=ctx.trees[arm],
                                   timeout_s=ctx.settings.limits.bench_timeout_s or ctx.task.benchmark.timeout_s,
                                   log_path=ctx.log_dir / f"{arm}.{flag.strip('-')}.log")
    ctx.logs[f"bench/{arm}.{flag.strip('-')}.log"] = log_tail(res.output)
    ctx.after(arm, res.leftovers)
    return res
