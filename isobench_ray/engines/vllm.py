"""vLLM: its OpenAI-compatible server and the benchmark scripts of benchmarks/ and `vllm bench`."""

from isobench_ray.engines.base import Engine

_SERVING_JSON = ("--save-result", "--result-dir", "{dir}", "--result-filename", "{name}")

VLLM = Engine(
    name="vllm",
    server_template="python -m vllm.entrypoints.openai.api_server --model {model} --host {host} --port {port}",
    health_path="/health",
    import_name="vllm",
    json_flags={
        r"benchmark_serving\.py$|^vllm bench serve$": _SERVING_JSON,
        r"benchmark_(latency|throughput|prefix_caching)\.py$|^vllm bench (latency|throughput)$": ("--output-json", "{path}"),
    },
    module_files={f"vllm bench {cmd}": f"vllm/benchmarks/{cmd}.py" for cmd in ("serve", "latency", "throughput")},
    client_warmup=("--num-warmups", "2"),  # CUDA graphs and compiled kernels warm before the clock (docs/measurement.md)
    # `vllm serve`, run as a module so that `python` (the arm's interpreter) and the tree's package are the
    # ones used; the api_server module warns that it is deprecated from then on
    server_forms=(("vllm/entrypoints/cli/main.py",
                   "python -m vllm.entrypoints.cli.main serve {model} --host {host} --port {port}"),),
)
