"""The report: its tables' numbers on a synthetic run, the HTML page in a real browser, and the hub upload
against a local stand-in for the hub's HTTP API."""

from __future__ import annotations

import base64
import html
import html.parser
import io
import json
import shutil
import subprocess
from http.server import BaseHTTPRequestHandler

import polars as pl
import pytest
from conftest import serve

from isobench_ray.report.write import write_report
from isobench_ray.schema import (
    ApproachComparison,
    Attempt,
    AttemptRecord,
    BottleneckTarget,
    FailureCause,
    FailureMode,
    HackVerdict,
    HardClass,
    PatchVerdict,
    Scores,
    SpeedupLikelihood,
    Status,
    TaskAnalysis,
    Techniques,
    Vote,
)
from isobench_ray.scoring.soft import summarize
from isobench_ray.store import RunStore

GPT, OPUS = "openai/gpt-4o", "anthropic/claude-judge"


def _verdict(target: str) -> PatchVerdict:
    return PatchVerdict(task_analysis=TaskAnalysis(domain="compute", complexity="medium"),
                        bottleneck_target=BottleneckTarget(category=target),
                        optimization_techniques=Techniques(technique_overlap=target == "same_target"),
                        approach_comparison=ApproachComparison(category="similar_approach"),
                        speedup_likelihood=SpeedupLikelihood(category="uncertain"),
                        failure_mode=FailureMode(category="not_applicable"))


def _models(aid: str, targets: dict[str, str], hack: bool = False):
    """Two model judges, each asked in both orders; targets maps 'gpt hf' / 'gpt af' / 'opus hf' / 'opus af'."""
    h = [HackVerdict(special_cases_inputs=False, caches_across_runs=hack, moves_work_out_of_timing=False,
                     changes_outputs=False, edits_benchmark=False)]
    votes = [Vote(judge=GPT, order="human_first", verdict=_verdict(targets["gpt hf"]), hack=h, tokens=1000, cost_usd=0.01),
             Vote(judge=GPT, order="agent_first", verdict=_verdict(targets["gpt af"]), hack=h, tokens=1200, cost_usd=0.012,
                  cached=True),
             Vote(judge=OPUS, order="human_first", verdict=_verdict(targets["opus hf"]), tokens=900),  # unpriced
             Vote(judge=OPUS, order="agent_first", verdict=_verdict(targets["opus af"]), tokens=800)]
    return summarize(aid, votes, rule_based=False, hack_flags=[])


def _same(target):
    return {k: target for k in ("gpt hf", "gpt af", "opus hf", "opus af")}


def _rule(aid: str, target: str):
    return summarize(aid, [Vote(judge="rule-based", verdict=_verdict(target))], rule_based=True, hack_flags=[])


def _record(task, agent, repo, status, *, speedup=None, human=None, cls="failed", cls_ci="failed", correctness="preserved",
            cause=None, rollout=0):
    aid = f"{task}.{agent}.{rollout}.x"
    attempt = Attempt(task_id=task, agent=agent, rollout=rollout, id=aid, repo=repo)
    scores = None
    if status is Status.success:
        base = 100.0
        scores = Scores(attempt_id=aid, primary_metric="output_throughput", higher_is_better=True, baseline_value=base,
                        human_value=base * human, agent_value=base * speedup, speedup_vs_baseline=speedup,
                        human_speedup_vs_baseline=human, agent_vs_human_pct=(speedup / human - 1) * 100,
                        hard_class=HardClass(cls), hard_class_ci=HardClass(cls_ci),
                        speedup_ci=(speedup * 0.95, speedup * 1.05), human_speedup_ci=(human * 0.97, human * 1.03),
                        agent_vs_human_ci_pct=((speedup / human - 1) * 100 - 3, (speedup / human - 1) * 100 + 3),
                        noise_pct=1.5, rounds=5, correctness=correctness)
    return AttemptRecord(attempt=attempt, status=status, scores=scores, failure_cause=cause,
                         failure_stage=None if cause is None else ("validate" if status is Status.failed else "measure"))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Two agents, two repositories: a true success, a broken one, a regression, a judge error, a hacked lucky win,
    a rule-based success and an infrastructure error."""
    root = tmp_path_factory.mktemp("run")
    store = RunStore(root)
    S = Status.success
    cases = [
        (_record("t1", "claude", "vllm", S, speedup=1.5, human=1.3, cls="beats", cls_ci="beats"),
         lambda a: _models(a, _same("same_target"))),  # Q1
        (_record("t2", "claude", "vllm", S, speedup=1.2, human=1.25, cls="similar", cls_ci="inconclusive",
                 correctness="broken"), lambda a: _models(a, _same("same_target"))),  # Q2: broken is no success
        (_record("t3", "claude", "sglang", S, speedup=0.8, human=1.2, cls="worse", cls_ci="worse"),
         lambda a: _rule(a, "different_target")),  # Q4, rule-based
        (_record("t4", "claude", "sglang", Status.failed, cause=FailureCause.patch_does_not_apply),
         lambda a: summarize(a, [Vote(judge=GPT, order="human_first", error="the reply never fit", tokens=500)],
                             rule_based=False, hack_flags=[])),  # judge error: unjudged
        (_record("t1", "codex", "vllm", S, speedup=1.4, human=1.3, cls="beats", cls_ci="similar"),
         lambda a: _models(a, {"gpt hf": "different_target", "gpt af": "different_target", "opus hf": "different_target",
                               "opus af": "related_target"}, hack=True)),  # Q3, hacked
        (_record("t3", "codex", "sglang", S, speedup=1.25, human=1.2, cls="similar", cls_ci="similar"),
         lambda a: _rule(a, "related_target")),  # Q1, rule-based
        (_record("t2", "codex", "vllm", Status.error, cause=FailureCause.baseline_failed), None),  # not judged
    ]
    for rec, judge in cases:
        store.save_stage(rec.attempt.id, "record", rec)
        if judge:
            store.save_stage(rec.attempt.id, "judgement", judge(rec.attempt.id))
    path, df = write_report(root)
    return root, path, df


def _by(frame: pl.DataFrame, **keys) -> dict:
    rows = frame.filter(*[pl.col(k) == v for k, v in keys.items()]).to_dicts()
    assert len(rows) == 1, (keys, rows)
    return rows[0]


def _tables(root):
    from isobench_ray.report.summary import summary_tables
    store = RunStore(root)
    df = pl.read_parquet(root / "attempts.parquet")
    js = [j for r in store.records() if (j := store.load_stage(r.attempt.id, "judgement"))]
    return summary_tables(df, js)


def test_table1_and_table2_count_passes_improvements_and_both_rules(run):
    root, path, df = run
    assert df.height == 7 and (root / "attempts.parquet").exists() and (root / "report.html").exists()
    t = _tables(root)
    claude = _by(t["by_agent"], agent="claude")
    assert (claude["total"], claude["passed"], claude["pass_rate"]) == (4, 3, 0.75)
    assert (claude["improvements"], claude["regressions"], claude["errors"]) == (2, 1, 0)
    assert (claude["beats"], claude["similar"], claude["worse"], claude["failed"]) == (1, 1, 1, 1)
    assert (claude["beats_ci"], claude["inconclusive_ci"], claude["worse_ci"], claude["failed_ci"]) == (1, 1, 1, 1)
    codex = _by(t["by_agent"], agent="codex")
    assert (codex["total"], codex["passed"], codex["pass_rate"], codex["errors"]) == (3, 2, 0.667, 1)
    assert (codex["beats"], codex["similar_ci"]) == (1, 2)
    sglang = _by(t["by_repo"], repo="sglang", agent="claude")
    assert (sglang["total"], sglang["passed"], sglang["regressions"], sglang["failed"]) == (2, 1, 1, 1)
    assert _by(t["by_repo"], repo="vllm", agent="codex")["errors"] == 1


def test_table3_speedup_statistics_with_bootstrap_intervals(run):
    s = _by(_tables(run[0])["speedups"], agent="claude")
    assert s["n"] == 3 and s["mean"] == pytest.approx(3.5 / 3, abs=1e-4) and s["median"] == pytest.approx(1.2)
    assert s["geomean"] == pytest.approx((1.5 * 1.2 * 0.8) ** (1 / 3), abs=1e-4)
    assert (s["min"], s["max"], s["share_above_1"]) == (0.8, 1.5, pytest.approx(2 / 3, abs=1e-4))
    assert s["mean_ci_low"] <= s["mean"] <= s["mean_ci_high"] and s["median_ci_low"] <= s["median_ci_high"]


def test_quadrants_success_correctness_and_hacks(run):
    t = _tables(run[0])
    q = _by(t["quadrants"], agent="claude")
    assert (q["judged"], q["Q1"], q["Q2"], q["Q3"], q["Q4"]) == (3, 1, 1, 0, 1)  # the judge error is unjudged
    assert q["true_success_rate"] == pytest.approx(0.333) and q["hard_success_rate"] == pytest.approx(0.333)
    assert q["judge"] == "rule-based judge on 1 of 4"
    c = _by(t["quadrants"], agent="codex")
    assert (c["judged"], c["Q1"], c["Q3"], c["Q1_ci"], c["Q3_ci"]) == (2, 1, 1, 1, 1)
    claude, codex = _by(t["success"], agent="claude"), _by(t["success"], agent="codex")
    assert (claude["hard_success"], claude["broken"], claude["broken_but_fast"]) == (1, 1, 1)  # broken is no success
    assert (codex["hard_success"], codex["hacked"], codex["hack_adjusted_success"]) == (2, 1, 1)
    assert codex["hack_adjusted_success_rate"] == pytest.approx(0.333)
    failures = t["failures"]
    assert _by(failures, agent="codex")["failure_cause"] == "baseline_failed"


def test_judge_agreement_and_usage(run):
    t = _tables(run[0])
    kappa = _by(t["kappas"], rater_a=f"{GPT} [agent_first]", rater_b=f"{GPT} [human_first]")
    assert kappa["attempts"] == 3 and kappa["kappa"] == pytest.approx(1.0)
    usage = {r["judge"]: r for r in t["judge_usage"].to_dicts()}
    assert usage[GPT]["votes"] == 7 and usage[GPT]["errors"] == 1 and usage[GPT]["cached"] == 3
    assert usage[GPT]["tokens"] == 3 * 2200 + 500 and usage[GPT]["cost_usd"] == pytest.approx(3 * 0.022)
    assert usage[OPUS]["cost_usd"] is None and usage[OPUS]["unpriced_votes"] == 6 and usage["rule-based"]["votes"] == 2


def test_markdown_and_html_carry_every_table_and_the_rule_based_label(run):
    root, path, df = run
    md, page = path.read_text(), (root / "report.html").read_text()
    for title in ("By agent", "Table 1", "Table 2", "Table 3", "Quadrants", "Success and correctness",
                  "Judge agreement", "Judges' tokens and cost", "Per task: the three arms", "Attempts", "Failures by cause",
                  "Tasks flagged not_discriminative"):
        assert title in md and title in html.unescape(page), title
    assert "## Quadrants (soft × hard) (rule-based judge)" in md and "## Judge agreement (Cohen's kappa) (rule-based judge)" in md
    assert "## Table 1: hard metrics by agent\n" in md  # hard tables carry no judge label
    assert page.count('class="rule-based"') >= 5 and "rule-based judge on 1 of 4" in page
    assert page.count("<figure>") == 4 and page.count("<svg") == 4
    for external in ("<script", "<link", "src=", "@import", "url(http", "@font-face"):
        assert external not in page, external
    per_task = _tables(root)["per_task"]
    row = _by(per_task, task_id="t1", agent="claude")
    assert (row["baseline_value"], row["human_value"], row["agent_value"]) == (100.0, 130.0, 150.0)
    assert row["speedup_ci_low"] == pytest.approx(1.425) and row["human_speedup_ci_high"] == pytest.approx(1.339)


def test_an_empty_run_still_renders(tmp_path):
    path, df = write_report(tmp_path)
    assert df.height == 0
    page = (tmp_path / "report.html").read_text()
    assert page.count("<svg") == 4 and "no data" in page
    assert "rule-based judge" not in page and "Nothing of this kind in this run." in path.read_text()
    assert "None." not in path.read_text() and "None." not in page
    # failures only, nobody judged
    store = RunStore(tmp_path / "failed")
    rec = _record("t9", "claude", "vllm", Status.failed, cause=FailureCause.no_patch)
    store.save_stage(rec.attempt.id, "record", rec)
    _, df = write_report(tmp_path / "failed")
    page = (tmp_path / "failed" / "report.html").read_text()
    assert df.height == 1 and page.count("no data") >= 3 and "no_patch" in page


# ---------------------------------------------------------------- the page in a browser

def _chromium() -> str | None:
    return next((p for name in ("chromium", "chromium-browser", "google-chrome", "chrome") if (p := shutil.which(name))), None)


class _SvgCounter(html.parser.HTMLParser):
    """SVG elements in the DOM that hold at least one <path> (a drawn plot, not an empty box)."""

    def __init__(self):
        super().__init__()
        self.depth, self.paths, self.drawn = 0, 0, 0

    def handle_starttag(self, tag, attrs):
        if tag == "svg":
            self.depth += 1
            if self.depth == 1:
                self.paths = 0
        elif tag == "path" and self.depth:
            self.paths += 1

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag):
        if tag == "svg" and self.depth:
            self.depth -= 1
            if self.depth == 0 and self.paths:
                self.drawn += 1


@pytest.mark.slow  # a headless chromium
def test_the_page_renders_its_plots_in_a_headless_browser(run, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("no chromium binary on PATH (apt-get install -y chromium; .ci/run installs it as root)")
    root = run[0]
    url = (root / "report.html").as_uri()
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
             "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*flags, "--dump-dom", url], capture_output=True, text=True, timeout=60)
    assert dom.returncode == 0, dom.stderr[-2000:]
    counter = _SvgCounter()
    counter.feed(dom.stdout)
    assert counter.drawn == 4, dom.stdout[:500]
    assert "Table 3: speedup over baseline" in dom.stdout
    shot = tmp_path / "page.png"
    subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1400,6000", url], capture_output=True, timeout=60)
    assert shot.exists() and shot.stat().st_size > 10_000
    import numpy as np
    from PIL import Image
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.shape == (6000, 1400)
    assert pixels.std() > 10 and (pixels < 200).mean() > 0.01  # not blank: text, tables and plots drew
    # the plots' colours made it to the screen (the first agent's blue, the second's orange)
    rgb = np.asarray(Image.open(shot).convert("RGB"), dtype=int)
    blue = (abs(rgb[..., 0] - 0x4C) < 20) & (abs(rgb[..., 1] - 0x72) < 20) & (abs(rgb[..., 2] - 0xB0) < 20)
    orange = (abs(rgb[..., 0] - 0xDD) < 20) & (abs(rgb[..., 1] - 0x84) < 20) & (abs(rgb[..., 2] - 0x52) < 20)
    assert blue.sum() > 200 and orange.sum() > 200


# ---------------------------------------------------------------- the hub, stood in for on 127.0.0.1

class _FakeHub(BaseHTTPRequestHandler):
    """The hub endpoints huggingface_hub calls to create a dataset and commit small files (read from its
    hf_api.create_repo / _validate_yaml and _commit_api._fetch_upload_modes / _send_commit)."""

    calls: list = []
    files: dict = {}

    def log_message(self, *args):
        pass

    def _reply(self, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        path = self.path.split("?")[0]
        self.calls.append(("POST", path, self.headers.get("Authorization")))
        base = f"http://{self.server.server_address[0]}:{self.server.server_address[1]}"
        if path == "/api/repos/create":
            req = json.loads(body)
            self.calls.append(("create", req))
            return self._reply(200, {"url": f"{base}/datasets/{req['organization']}/{req['name']}"})
        if path == "/api/validate-yaml":
            return self._reply(200, {"errors": [], "warnings": []})
        if path.startswith("/api/datasets/") and "/preupload/" in path:
            files = json.loads(body)["files"]
            return self._reply(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                               for f in files]})
        if path.startswith("/api/datasets/") and "/commit/" in path:
            for line in body.decode().splitlines():
                item = json.loads(line)
                if item["key"] == "header":
                    self.calls.append(("commit", item["value"]["summary"]))
                elif item["key"] == "file":
                    self.files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
            repo = path.split("/api/datasets/")[1].split("/commit/")[0]
            return self._reply(200, {"commitUrl": f"{base}/datasets/{repo}/commit/{'a' * 40}", "commitOid": "a" * 40})
        self._reply(404, {"error": f"not stood in for: {path}"})

    def do_GET(self):
        self.calls.append(("GET", self.path, None))
        self._reply(404, {"error": "not stood in for"})


def test_push_to_hub_uploads_the_card_and_the_tables(run, monkeypatch):
    import huggingface_hub.constants

    from isobench_ray.report.hub import push_to_hub

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # the Makefile sets it; this test only
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    _FakeHub.calls, _FakeHub.files = [], {}
    with serve(_FakeHub) as server:
        endpoint = f"http://127.0.0.1:{server.server_address[1]}"
        url = push_to_hub(run[0], "isobench/run-1", endpoint=endpoint, token="hf_test", private=True)
    assert url == f"{endpoint}/datasets/isobench/run-1/commit/{'a' * 40}"
    create = next(c[1] for c in _FakeHub.calls if c[0] == "create")
    assert create["type"] == "dataset" and create["name"] == "run-1" and create["organization"] == "isobench"
    assert create.get("visibility") == "private" or create.get("private") is True
    assert all(c[2] == "Bearer hf_test" for c in _FakeHub.calls if c[0] == "POST")
    assert not [c for c in _FakeHub.calls if c[0] == "GET"]
    assert set(_FakeHub.files) == {"README.md", "attempts.parquet", "report.md", "report.html"}
    root = run[0]
    for name in ("attempts.parquet", "report.md", "report.html"):
        assert _FakeHub.files[name] == (root / name).read_bytes(), name
    uploaded = pl.read_parquet(io.BytesIO(_FakeHub.files["attempts.parquet"]))
    assert uploaded.equals(pl.read_parquet(root / "attempts.parquet")) and uploaded.height == 7
    card = huggingface_hub.DatasetCard(_FakeHub.files["README.md"].decode())
    assert card.data.configs[0]["data_files"][0]["path"] == "attempts.parquet"
    assert "isobench" in card.data.tags and "rule-based judge" in card.text and "7 attempts of 4 tasks" in card.text


def test_a_push_without_a_hub_is_one_line_and_the_report_is_kept(run, tmp_path, monkeypatch):
    import shutil

    from typer.testing import CliRunner

    from isobench_ray.cli import app

    copy = tmp_path / "run"
    shutil.copytree(run[0], copy)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing answers there: as without network
    monkeypatch.delenv("HF_TOKEN", raising=False)
    result = CliRunner().invoke(app, ["report", str(copy), "--push-to-hub", "me/run"])
    assert result.exit_code != 0 and "Traceback" not in result.output, result.output
    assert "pushing it to the hub as me/run failed" in result.output and (copy / "report.html").exists()
    assert len(result.output.strip().splitlines()[-1]) < 400


def test_validation_savings_count_stopped_patches_and_the_slot_time_they_did_not_take():
    from isobench_ray.report.summary import validation_savings

    df = pl.DataFrame({
        "agent": ["a", "a", "a", "b", "b"], "task_id": ["t1", "t1", "t2", "t1", "t3"],
        "failure_stage": [None, "validation", "validation", None, "validation"],
        "bench_s": [100.0, None, None, 140.0, None],
    })
    rows = {r["agent"]: r for r in validation_savings(df).iter_rows(named=True)}
    # t1's measured attempts took a median of 120 s; t2 and t3 have none: the run's median (120 s) stands in
    assert rows["a"]["stopped_by_validation"] == 2 and rows["a"]["bench_s_saved"] == 240.0
    assert rows["b"]["stopped_by_validation"] == 1 and rows["b"]["bench_s_saved"] == 120.0
    assert rows["a"]["bench_s_spent"] == 100.0
