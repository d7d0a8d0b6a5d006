"""minillm, the bundled demo engine: vLLM's entry points, flags and output formats on a CPU."""

from dataclasses import replace

from isobench_ray.engines.vllm import VLLM

MINILLM = replace(
    VLLM,
    name="minillm",
    server_template="python -m minillm.entrypoints.openai.api_server --model {model} --host {host} --port {port}",
    import_name="minillm",
    warmup_runs=0,  # a numpy engine on a CPU: its first run after a start is not slower (docs/measurement.md)
    client_warmup=(),  # nor its first requests: nothing compiles or captures graphs
)
