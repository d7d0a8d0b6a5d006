"""The slot pool's choices that need no running cluster."""

from isobench_ray.cluster import simulate
from isobench_ray.cluster.slots import SlotPool


def test_benchmarks_prefer_a_node_that_already_has_the_commit(make_settings):
    pool = SlotPool(make_settings(), simulate.stages(0.0))
    task = simulate.tasks(1)[0]
    cold, warm = object(), object()
    pool.idle = [cold, warm]
    pool.ready = {cold, warm}
    pool.actor_node = {cold: "10.0.0.1/aaaa", warm: "10.0.0.2/bbbb"}
    pool.node_commits["10.0.0.2/bbbb"].add(task.parent_commit)
    assert pool.pick(task) is warm
    assert pool.pick(task) is cold  # no warm slot left: any idle one
    assert pool.idle == [] and pool.pick(task) is None


def test_a_retry_goes_to_another_slot_than_the_one_it_failed_on(make_settings):
    pool = SlotPool(make_settings(), simulate.stages(0.0))
    task = simulate.tasks(1)[0]
    dirty, other = object(), object()
    pool.actors = {dirty: None, other: None}
    pool.idle, pool.ready = [dirty], {dirty, other}
    pool.slot_of = {dirty: "n/gpu0", other: "n/gpu1"}
    assert pool.pick(task, avoid={"n/gpu0"}) is None  # wait for gpu1, busy now
    pool.idle.append(other)
    assert pool.pick(task, avoid={"n/gpu0"}) is other
    del pool.actors[other]
    assert pool.pick(task, avoid={"n/gpu0"}) is dirty  # nothing else left: better than never


def test_an_attempt_ended_at_planning_needs_no_stage_bar():
    """An attempt recorded at planning (image_missing) will run no stage: every stage's bar expects one less."""
    import collections

    from isobench_ray.cluster.progress import Progress

    progress = Progress(2, 0, collections.Counter(session=2), lambda data: None, show=False)
    progress.attempt_done("error", "plan")
    assert {stage: bar.total for stage, bar in progress.bars.items()} == dict.fromkeys(
        ("session", "validation", "measurements"), 1)
    progress.attempt_done("failed", "session")  # a session failure still needs its session bar
    assert {stage: bar.total for stage, bar in progress.bars.items()} == {"session": 1, "validation": 0, "measurements": 0}


def test_the_minute_summary_says_where_the_run_is_and_when_it_ends():
    """The job log's one line a minute: done of total by status, what runs per stage, the queue, and the
    rate counted from what this driver finished (attempts of an earlier run do not inflate it)."""
    import collections

    from isobench_ray.cluster.progress import summary_line

    counts = collections.Counter(done=1100, success=900, failed=150, error=50)
    running = collections.Counter(session=40, validation=10, measurements=1000)
    line = summary_line(counts, 100_000, running, 25, elapsed_s=600.0, done_before=1000)
    assert "1100/100000 attempts done (ok 900, failed 150, error 50)" in line
    assert "benchmark 1000; queued for a slot 25" in line and "10.0 attempts/min" in line
    assert "164.8 h left" in line  # 98,900 left at 10 a minute
    assert "all done" in summary_line(collections.Counter(done=5), 5, collections.Counter(), 0, 60.0, 0)


class _Slot:
    """A stand-in for a slot actor's handle: records what it was handed (Ray's `.remote` call shape)."""

    def __init__(self, name: str):
        self.name, self.handed = name, []
        self.run = self

    def remote(self, attempt, task, patch):
        self.handed.append(attempt.id)
        return object()


def test_a_queued_benchmark_no_idle_slot_suits_keeps_its_place_and_the_next_one_goes(make_settings, tmp_path):
    """The driver takes benchmarks from the head of its queue: one that must wait (its retry avoids the only
    idle slot) stays first in line, the one behind it runs, and nothing else of the queue is touched."""
    from isobench_ray.cluster.driver import Driver
    from isobench_ray.pipeline import plan_attempts
    from isobench_ray.schema import Session
    from isobench_ray.store import RunStore

    store = RunStore(tmp_path)
    plan = plan_attempts(simulate.tasks(4), [simulate.SimAgent()])
    driver = Driver(store, plan, make_settings(), stages=simulate.stages(0.0), show_progress=False)
    ids = [a.id for a, _, _ in plan]
    for aid in ids:
        store.save_stage(aid, "session", Session(attempt_id=aid, patch="--- x\n"))
    free, busy = _Slot("n/gpu0"), _Slot("n/gpu1")
    pool = driver.slots
    pool._gpus, pool.node_gpus = 2, [2]
    pool.actors, pool.idle, pool.ready = {free: None, busy: None}, [free], {free, busy}
    pool.slot_of = {free: "n/gpu0", busy: "n/gpu1"}
    driver.avoid[ids[0]] = {"n/gpu0"}  # it failed there: it waits for gpu1
    for aid in ids:
        driver.bench_queue.append(aid, 1)
    driver._dispatch_benchmarks()
    assert free.handed == [ids[1]] and busy.handed == []
    assert list(driver.bench_queue) == [ids[0], ids[2], ids[3]]
    assert driver.running["measurements"] == 1


def test_one_gpu_benchmarks_behind_a_long_line_of_two_gpu_ones_still_get_the_one_gpu_slots(make_settings, tmp_path):
    """70 two-GPU benchmarks queued before 3 one-GPU ones, a pool of one-GPU slots (the pool serves the smallest
    size first). In one line the driver passed over 64 and stopped, and the pool kept its one-GPU shape for the
    one-GPU work it never reached: nothing ran again. A line per size hands them out."""
    from isobench_ray.cluster.driver import Driver
    from isobench_ray.pipeline import plan_attempts
    from isobench_ray.schema import Session
    from isobench_ray.store import RunStore

    store = RunStore(tmp_path)
    plan = plan_attempts(simulate.tasks(70, gpus=2) + simulate.tasks(3, start=70), [simulate.SimAgent()])
    driver = Driver(store, plan, make_settings(), stages=simulate.stages(0.0), show_progress=False)
    for attempt, task, _ in plan:
        store.save_stage(attempt.id, "session", Session(attempt_id=attempt.id, patch="--- x\n"))
        driver.bench_queue.append(attempt.id, task.benchmark.gpus)
    slots = [_Slot("n/gpu0"), _Slot("n/gpu1")]
    pool = driver.slots
    pool._gpus, pool.node_gpus = 2, [2]
    pool.actors, pool.idle, pool.ready = dict.fromkeys(slots), list(slots), set(slots)
    pool.slot_of, pool.size = {s: s.name for s in slots}, dict.fromkeys(slots, 1)
    driver._dispatch_benchmarks()
    one_gpu = [a.id for a, t, _ in plan if t.benchmark.gpus == 1]
    assert slots[0].handed + slots[1].handed == one_gpu[:2]
    assert driver.bench_queue.sizes() == [1, 2] and len(driver.bench_queue) == 71
    assert list(driver.bench_queue)[0] == one_gpu[2]  # the third waits at the head of its own line
