#!/usr/bin/env python3
"""Package size and cold-start init time of function binaries, measured the
way Lambda starts them: the bootstrap is run against a Lambda Runtime API on
loopback, and its init time is the time from exec to its first
`GET /runtime/invocation/next` (what Lambda reports as Init Duration: the
configuration read, the adapters wired). Nothing is invoked, so no AWS API
is called.

    python3 scripts/measure-lambda.py [--config pipeline.toml] [--runs 7] BOOTSTRAP|ZIP ...

For each file it prints one JSON line: the binary's size, the size of a zip
holding it and pipeline.toml as scripts/package-lambdas.sh builds (deflate,
level 9), and the init time's median and spread over the runs. An arm64
bootstrap on another machine runs under qemu-aarch64, whose times are not
Lambda's: measure natively built binaries for init times.
"""

import argparse
import http.server
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


class RuntimeApi(http.server.BaseHTTPRequestHandler):
    """Records when the bootstrap first asks for an event, and holds it."""

    first_next = None
    asked = threading.Event()

    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path.endswith("/invocation/next") and RuntimeApi.first_next is None:
            RuntimeApi.first_next = time.perf_counter()
            RuntimeApi.asked.set()
        # Never answer: the measurement ends at the question.
        time.sleep(5)


def bootstrap_of(path, scratch):
    if path.suffix == ".zip":
        zipfile.ZipFile(path).extractall(scratch)
        binary = scratch / "bootstrap"
    else:
        binary = path
    binary.chmod(0o755)
    return binary


def zipped_size(binary, config, scratch):
    out = scratch / "package.zip"
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        z.write(binary, "bootstrap")
        z.write(config, "pipeline.toml")
    return out.stat().st_size


def init_time(binary, config, api_port):
    env = {
        "PATH": os.environ.get("PATH", ""),
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{api_port}",
        "AWS_LAMBDA_FUNCTION_NAME": "tributary-measure",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_FUNCTION_VERSION": "1",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "measure",
        "AWS_SECRET_ACCESS_KEY": "measure",
        "TRIBUTARY_CONFIG": str(config),
        "TRIBUTARY_BUCKET": "tributary-data",
        "TRIBUTARY_TABLE": "tributary-state",
        "TRIBUTARY_GLUE_DATABASE": "tributary",
        "TRIBUTARY_STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:tributary-partition_pipeline",
        "TRIBUTARY_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:tributary-approvals",
    }
    command = [str(binary)]
    if platform.machine() != "aarch64" and b"aarch64" in subprocess.run(["file", "-b", str(binary)], capture_output=True).stdout:
        command = ["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu", *command]
    RuntimeApi.first_next = None
    RuntimeApi.asked.clear()
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        if not RuntimeApi.asked.wait(30):
            process.kill()
            raise SystemExit(f"{binary}: no request for an event in 30 s: {process.stderr.read().decode()[:2000]}")
        return (RuntimeApi.first_next - started) * 1000
    finally:
        process.kill()
        process.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--config", type=Path, default=REPO / "samplelocal/pipeline.toml")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    api = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RuntimeApi)
    threading.Thread(target=api.serve_forever, daemon=True).start()
    for path in args.files:
        with tempfile.TemporaryDirectory() as scratch:
            scratch = Path(scratch)
            binary = bootstrap_of(path, scratch)
            times = [init_time(binary, args.config.resolve(), api.server_address[1]) for _ in range(args.runs)]
            print(json.dumps({
                "file": str(path),
                "binary_bytes": binary.stat().st_size,
                "zip_bytes": zipped_size(binary, args.config, scratch),
                "init_ms_median": round(statistics.median(times), 1),
                "init_ms_min": round(min(times), 1),
                "init_ms_max": round(max(times), 1),
                "runs": len(times),
            }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
