"""SGLang: `sglang.launch_server` and the sglang.bench_* modules."""

from isobench_ray.engines.base import Engine
from isobench_ray.engines.perf_command import SERVER_FLAGS

SGLANG = Engine(
    name="sglang",
    server_template="python -m sglang.launch_server --model-path {model} --host {host} --port {port}",
    health_path="/health",
    import_name="sglang",
    server_flags=SERVER_FLAGS | {"--tp-size", "--mem-fraction-static", "--chunked-prefill-size", "--attention-backend"},
    json_flags={
        r"^sglang\.bench_serving$": ("--output-file", "{path}"),
        r"^sglang\.bench_(one_batch|offline_throughput)$": ("--result-filename", "{path}"),
    },
    module_files={f"sglang.{m}": f"python/sglang/{m}.py" for m in ("bench_serving", "bench_one_batch", "bench_offline_throughput")},
    client_warmup=("--warmup-requests", "2"),
)
