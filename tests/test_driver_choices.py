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
