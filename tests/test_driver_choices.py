"""The driver's choices that need no running cluster."""

from isobench_ray import simulate
from isobench_ray.cluster import Driver
from isobench_ray.settings import Settings
from isobench_ray.store import RunStore


def test_benchmarks_prefer_a_node_that_already_has_the_commit(tmp_path):
    driver = Driver(RunStore(tmp_path), [], Settings(work_dir=str(tmp_path / "w")), stages=simulate.stages(0.0), show_progress=False)
    task = simulate.tasks(1)[0]
    cold, warm = object(), object()
    driver.idle = [cold, warm]
    driver.actor_node = {cold: "10.0.0.1/aaaa", warm: "10.0.0.2/bbbb"}
    driver.node_commits["10.0.0.2/bbbb"].add(task.parent_commit)
    assert driver._pick_actor(task) is warm
    assert driver._pick_actor(task) is cold  # no warm slot left: any idle one
    assert driver.idle == []
