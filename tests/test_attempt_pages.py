"""Every attempt gets a page of its own: what the agent did and how it was measured, escaped and bounded."""

from pathlib import Path

from isobench_ray import demo
from isobench_ray.report.write import write_report
from isobench_ray.schema import (
    ArmResult,
    Attempt,
    AttemptRecord,
    HardClass,
    Judgement,
    Measurements,
    NoopSpec,
    Run,
    Scores,
    Session,
    Status,
    Vote,
)
from isobench_ray.store import RunStore
from isobench_ray.tasks import load_tasks

HOSTILE = "+print('<script>alert(1)</script>')\n"


def _record(store: RunStore) -> AttemptRecord:
    task = load_tasks(demo.TASKS_FILE).tasks[0]
    attempt = Attempt.make(task, NoopSpec(name="mine"), 0, {})
    runs = [Run(arm=arm, round=r, metrics={"output_throughput": 100.0 + r + (30 if arm == "agent" else 0)})
            for r in range(3) for arm in ("baseline", "human", "agent", "baseline2")]
    m = Measurements(attempt_id=attempt.id, slot="s", primary_metric="output_throughput", higher_is_better=True,
                     arms=[ArmResult(arm=a, commit="c", command="x", runs=[r for r in runs if r.arm == a])
                           for a in ("baseline", "human", "agent", "baseline2")])
    record = AttemptRecord(attempt=attempt, status=Status.success, session=Session(attempt_id=attempt.id, patch=HOSTILE,
                                                                                   steps=7, tokens=12_345),
                           measurements=m, scores=Scores(attempt_id=attempt.id, primary_metric="output_throughput",
                                                         higher_is_better=True, speedup_vs_baseline=1.3,
                                                         hard_class=HardClass.beats))
    folder = store.attempt_dir(attempt.id)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "patch.diff").write_text("--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-old\n" + HOSTILE)
    (folder / "prompt.md").write_text("Make the sampler fast.")
    (folder / "bench").mkdir()
    (folder / "bench" / "agent.r0.0.log").write_text("x" * 5_000_000 + "\nthe end of a long log")
    store.save_stage(attempt.id, "record", record)
    store.save_stage(attempt.id, "judgement", Judgement(attempt_id=attempt.id, votes=[Vote(judge="j", error="no reply")],
                                                        judge_error="no reply", hack_flags=["addresses_judge"]))
    return record


def test_each_attempt_has_a_linked_escaped_bounded_page(tmp_path):
    store = RunStore(tmp_path / "run")
    record = _record(store)
    write_report(tmp_path / "run")
    page_path = tmp_path / "run" / "attempts" / record.attempt.id / "index.html"
    page = page_path.read_text()
    report = (tmp_path / "run" / "report.html").read_text()
    assert f'href="attempts/{record.attempt.id}/index.html"' in report
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # the patch is text, not code
    assert 'class="add"' in page and "Make the sampler fast." in page and "the end of a long log" in page
    assert "addresses_judge" in page and "no reply" in page and "12,345" in page and "<svg" in page
    assert page_path.stat().st_size < 200_000  # a 5 MB log is cut to its head and tail
    assert "–%" not in page  # a missing value is a dash, not a dash with a unit


# ---------------------------------------------------------------- what a person sees: headless Chromium

# Test-only: appended to a copy of a page (the pages themselves run no script), it writes where the headings,
# the first table, the health line and the diff's first added line landed, and any bare "None." paragraph
MEASURE = """<script>
const box = e => e ? e.getBoundingClientRect().toJSON() : null;
const found = {headings: [...document.querySelectorAll('h2')].map(h => [h.textContent.trim(), h.getBoundingClientRect().top]),
  table: box(document.querySelector('table')), add: box(document.querySelector('.add')),
  health: box([...document.querySelectorAll('p')].find(p => p.textContent.includes('Run health'))),
  none: [...document.querySelectorAll('p')].filter(p => p.textContent.trim() === 'None.').length};
document.body.insertAdjacentHTML('beforeend', '<pre id="layout">' + JSON.stringify(found) + '</pre>');
</script>"""


def _look(page, tmp_path, name: str, height: int) -> tuple[dict, "object"]:
    """(where things landed, the screenshot as an RGB array) of `page` in a 1400 x `height` window. The
    screenshot is kept in $ISOBENCH_SCREENSHOTS when set (a person looks at them: the note describes them)."""
    import json
    import os
    import re
    import shutil
    import subprocess

    import numpy as np
    import pytest
    from PIL import Image

    browser = next((p for n in ("chromium", "chromium-browser", "google-chrome") if (p := shutil.which(n))), None)
    if browser is None:
        pytest.skip("no chromium binary on PATH (apt-get install -y chromium; .ci/run installs it as root)")
    measured = page.with_name(f".measured-{page.name}")
    measured.write_text(page.read_text().replace("</body>", MEASURE + "</body>"))
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
             "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}", f"--window-size=1400,{height}"]
    dom = subprocess.run([*flags, "--virtual-time-budget=3000", "--dump-dom", measured.as_uri()], capture_output=True,
                         text=True, timeout=90)
    # the last: the script's own text holds the tag too
    layout = json.loads(re.findall(r'<pre id="layout">(.*?)</pre>', dom.stdout, re.S)[-1].replace("&amp;", "&"))
    shot = Path(os.environ.get("ISOBENCH_SCREENSHOTS") or tmp_path) / f"{name}.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([*flags, f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=90)
    return layout, np.asarray(Image.open(shot).convert("RGB"), dtype=int)


def test_the_first_screen_answers_who_did_best_and_an_attempts_page_shows_its_patch(tmp_path):
    """The report's first screen (1400 x 900): the ranking and the run's health line, drawn, before any other
    table; no bare "None." anywhere. An attempt's page: its facts, its samples plot and its patch with the
    added lines on green, as Chromium draws them."""
    import pytest

    pytest.importorskip("PIL")
    store = RunStore(tmp_path / "run")
    record = _record(store)
    write_report(tmp_path / "run")
    layout, pixels = _look(tmp_path / "run" / "report.html", tmp_path, "report-first-screen", 900)
    titles = [t for t, _ in layout["headings"]]
    assert titles[0] == "Who did best" and layout["headings"][0][1] < 300, layout["headings"]
    assert layout["health"] and layout["health"]["bottom"] < 900 and layout["none"] == 0, layout
    table = layout["table"]  # the first table is the ranking, and it is on the first screen
    assert table["top"] < 900 and table["height"] > 40, table
    region = pixels[int(table["top"]) + 2: min(900, int(table["bottom"])) - 2, int(table["left"]) + 2: int(table["right"]) - 2]
    assert region.size and region.std() > 20 and (region.mean(axis=2) < 120).mean() > 0.01  # text drawn in it
    assert (pixels.mean(axis=2) > 250).mean() < 0.97  # the screen is not blank

    page, _ = tmp_path / "run" / "attempts" / record.attempt.id / "index.html", None
    layout, pixels = _look(page, tmp_path, "attempt-page", 2400)
    assert [t for t, _ in layout["headings"]][:3] == ["Samples", "Patch", "Judges"], layout["headings"]
    add = layout["add"]
    assert add and add["top"] < 2400 and layout["none"] == 0, layout
    line = pixels[int(add["top"]) + 1: int(add["bottom"]) - 1, int(add["left"]) + 2: int(add["left"]) + 200]
    green = (abs(line[..., 0] - 0xE6) < 8) & (abs(line[..., 1] - 0xFF) < 8) & (abs(line[..., 2] - 0xEC) < 8)
    assert green.mean() > 0.5, green.mean()  # the added line's background, as the diff colours it


def test_a_large_run_renders_a_bounded_number_of_pages_and_view_renders_the_rest(tmp_path, monkeypatch):
    """A report renders only missing or stale pages, PAGES_PER_REPORT at most; `isobench view` renders one when
    it is asked for; the attempts table of report.md and report.html is capped, attempts.parquet holds all."""
    import polars as pl

    from isobench_ray.report import attempt_page, write

    monkeypatch.setattr(attempt_page, "PAGES_PER_REPORT", 2)
    monkeypatch.setattr(write, "ATTEMPT_ROWS", 2)
    store = RunStore(tmp_path / "run")
    records, record = [], _record(store)
    for i in range(3):
        moved = record.model_copy(update={"attempt": record.attempt.model_copy(update={"id": f"{record.attempt.id}-{i}"})})
        store.save_stage(moved.attempt.id, "record", moved)
        records.append(moved)
    write_report(tmp_path / "run")
    pages = sorted((tmp_path / "run" / "attempts").glob("*/index.html"))
    assert len(pages) == 2  # (the fourth record, _record's own, has no page either: the bound holds)
    missing = next(r.attempt.id for r in records if not (tmp_path / "run" / "attempts" / r.attempt.id / "index.html").exists())
    assert attempt_page.render_missing(tmp_path / "run", missing)
    assert (tmp_path / "run" / "attempts" / missing / "index.html").exists()
    assert not attempt_page.render_missing(tmp_path / "run", "no-such-attempt")
    before = {p: p.stat().st_mtime_ns for p in pages}
    write_report(tmp_path / "run")  # nothing changed: no page rendered again
    assert all(p.stat().st_mtime_ns == t for p, t in before.items())
    report = (tmp_path / "run" / "report.md").read_text()
    assert "The first 2 of 4 attempts: every one is in attempts.parquet" in report
    assert pl.read_parquet(tmp_path / "run" / "attempts.parquet").height == 4
