"""cluster.yaml and the runtime environments are valid for the Ray that runs them."""

from pathlib import Path

import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

ROOT = Path(__file__).resolve().parents[1]


def test_cluster_yaml_passes_rays_own_schema():
    config = prepare_config(yaml.safe_load((ROOT / "cluster.yaml").read_text()))
    validate_config(config)  # raises on a schema violation
    workers = config["available_node_types"]["h100"]
    assert workers["node_config"]["InstanceType"] == "p5.48xlarge" and workers["resources"]["GPU"] == 8
    assert "--gpus all" in config["docker"]["run_options"]


def test_schema_check_is_not_vacuous():
    config = prepare_config(yaml.safe_load((ROOT / "cluster.yaml").read_text()))
    config["available_node_types"]["h100"]["min_workers"] = "two"
    with pytest.raises(Exception, match="not of type 'integer'"):
        validate_config(config)


@pytest.mark.parametrize("name", ["cluster.yaml", "local.yaml"])
def test_runtime_envs_are_well_formed(name):
    from ray.runtime_env import RuntimeEnv

    env = yaml.safe_load((ROOT / "runtime_envs" / name).read_text())
    RuntimeEnv(**env)  # Ray's own validation of the fields
    assert ".venv/" in env["excludes"] and env["env_vars"]["LITELLM_LOCAL_MODEL_COST_MAP"] == "True"
