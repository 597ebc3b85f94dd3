#!/usr/bin/env python3
"""Run a packaged function (dist/lambda/<function>.zip, arm64) the way Lambda
does, against moto on 127.0.0.1: a Lambda Runtime API on loopback hands the
bootstrap one event and takes its answer. On an x86_64 machine the arm64
bootstrap runs under qemu-aarch64 (apt: qemu-user libc6-arm64-cross).

    .tools/venv/bin/python scripts/smoke-lambda.py [dist/lambda/object-created.zip]

It sets up what Terraform would (bucket, table, state machine), uploads a
sample file, delivers its S3 event to object-created and checks that exactly
one partition pipeline execution started. A manual check of the release
artifacts: too slow to package in the test suite.
"""

import http.server
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import zipfile
from pathlib import Path

import boto3

REPO = Path(__file__).resolve().parents[1]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port):
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port)).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listens on {port}")


class RuntimeApi(http.server.BaseHTTPRequestHandler):
    """The three calls a custom runtime makes: next, response, error."""

    event = None
    answer = None
    done = threading.Event()

    def log_message(self, *args):
        pass

    def do_GET(self):
        if not self.path.endswith("/invocation/next") or RuntimeApi.event is None:
            self.send_error(404)
            return
        body, RuntimeApi.event = json.dumps(RuntimeApi.event).encode(), None
        self.send_response(200)
        self.send_header("Lambda-Runtime-Aws-Request-Id", "smoke-1")
        self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 60000))
        self.send_header("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:smoke")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        payload = self.rfile.read(length).decode()
        kind = "error" if self.path.endswith("/error") else "response"
        RuntimeApi.answer = (kind, payload)
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()
        RuntimeApi.done.set()


def main():
    zip_path = Path(sys.argv[1] if len(sys.argv) > 1 else REPO / "dist/lambda/object-created.zip")
    moto_port = free_port()
    moto = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(moto_port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    api = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RuntimeApi)
    threading.Thread(target=api.serve_forever, daemon=True).start()
    try:
        wait_for(moto_port)
        endpoint = f"http://127.0.0.1:{moto_port}"
        aws = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
        s3, ddb, sfn = boto3.client("s3", **aws), boto3.client("dynamodb", **aws), boto3.client("stepfunctions", **aws)
        s3.create_bucket(Bucket="tributary-smoke-data")
        ddb.create_table(TableName="tributary-smoke-state", BillingMode="PAY_PER_REQUEST",
                         AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
                         KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}])
        machine = sfn.create_state_machine(name="tributary-smoke-partition_pipeline", roleArn="arn:aws:iam::123456789012:role/sfn",
                                           definition='{"StartAt":"Done","States":{"Done":{"Type":"Succeed"}}}')["stateMachineArn"]
        key = "raw/orders/date=2025-12-01/orders.csv"
        body = (REPO / "samplelocal/sample" / key).read_bytes()
        etag = s3.put_object(Bucket="tributary-smoke-data", Key=key, Body=body)["ETag"].strip('"')
        RuntimeApi.event = {"Records": [{
            "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1", "eventTime": "2025-12-01T06:00:00.000Z",
            "eventName": "ObjectCreated:Put", "userIdentity": {"principalId": "AWS:UPSTREAM"},
            "requestParameters": {"sourceIPAddress": "10.0.0.1"}, "responseElements": {},
            "s3": {"s3SchemaVersion": "1.0", "configurationId": "raw",
                   "bucket": {"name": "tributary-smoke-data", "ownerIdentity": {"principalId": "X"}, "arn": "arn:aws:s3:::tributary-smoke-data"},
                   "object": {"key": urllib.parse.quote(key), "size": len(body), "eTag": etag, "sequencer": "0055AED6DCD90281E5"}}}]}

        task_root = Path(tempfile.mkdtemp())
        zipfile.ZipFile(zip_path).extractall(task_root)
        bootstrap = task_root / "bootstrap"
        bootstrap.chmod(0o755)
        command = [str(bootstrap)]
        if platform.machine() != "aarch64":
            command = ["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu", *command]
        env = {
            "PATH": os.environ.get("PATH", ""),
            "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{api.server_address[1]}",
            "AWS_LAMBDA_FUNCTION_NAME": "tributary-smoke-object-created",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "LAMBDA_TASK_ROOT": str(task_root),
            "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_ENDPOINT_URL": endpoint,
            "TRIBUTARY_CONFIG": str(task_root / "pipeline.toml"),
            "TRIBUTARY_BUCKET": "tributary-smoke-data",
            "TRIBUTARY_TABLE": "tributary-smoke-state",
            "TRIBUTARY_GLUE_DATABASE": "tributary_smoke_catalog",
            "TRIBUTARY_STATE_MACHINE_ARN": machine,
            "TRIBUTARY_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:tributary-smoke-notifications",
        }
        started = time.time()
        function = subprocess.Popen(command, env=env, cwd=task_root)
        try:
            if not RuntimeApi.done.wait(120):
                raise SystemExit("the function answered nothing in 120 s")
        finally:
            function.kill()
        kind, payload = RuntimeApi.answer
        print(f"{zip_path.name}: {kind} after {time.time() - started:.1f} s: {payload[:600]}")
        executions = sfn.list_executions(stateMachineArn=machine)["executions"]
        print(f"executions started: {[e['name'] for e in executions]}")
        ok = kind == "response" and len(executions) == 1
        print("smoke: ok" if ok else "smoke: FAILED")
        return 0 if ok else 1
    finally:
        api.shutdown()
        moto.kill()


if __name__ == "__main__":
    sys.exit(main())
