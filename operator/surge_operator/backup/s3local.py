"""A real S3-compatible server on loopback for tests and `surge bench backup`.

It is versitygw (built from its Go module by `make s3-server`, see tools/go-tool.sh)
serving a POSIX directory. It checks SigV4 signatures, so wrong credentials really fail.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from surge_operator.errors import BackupTargetError

ENV_BINARY = "SURGE_S3_SERVER"


def find_s3_server() -> str | None:
    explicit = os.environ.get(ENV_BINARY)
    if explicit:
        return explicit
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "surge/tools/bin"
    candidate = cache / "versitygw"
    if candidate.is_file():
        return str(candidate)
    return shutil.which("versitygw")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LocalS3:
    root: Path
    access_key: str = "surge-test-access"
    secret_key: str = field(default="surge-test-secret-key-0123456789", repr=False)
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self, bucket_prefix: str = "") -> dict[str, str]:
        return {
            "SURGE_S3_ENDPOINT": self.endpoint,
            "SURGE_S3_ACCESS_KEY_ID": self.access_key,
            "SURGE_S3_SECRET_ACCESS_KEY": self.secret_key,
            "SURGE_S3_REGION": "us-east-1",
        }

    def start(self) -> LocalS3:
        binary = find_s3_server()
        if binary is None:
            raise BackupTargetError(
                f"no S3-compatible server: run `make s3-server` or set {ENV_BINARY}"
            )
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = self.port or _free_port()
        env = {
            **os.environ,
            "ROOT_ACCESS_KEY": self.access_key,
            "ROOT_SECRET_KEY": self.secret_key,
        }
        self.process = subprocess.Popen(
            [binary, "--port", f"127.0.0.1:{self.port}", "posix", str(self.root)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BackupTargetError(f"S3 server exited with {self.process.returncode}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.05)
        raise BackupTargetError("S3 server did not start listening within 20 s")

    def make_bucket(self, bucket: str) -> None:
        # versitygw's posix backend: a bucket is a top-level directory
        from minio import Minio

        client = Minio(
            f"127.0.0.1:{self.port}",
            access_key=self.access_key,
            secret_key=self.secret_key,
            secure=False,
            region="us-east-1",
        )
        if not client.bucket_exists(bucket):
            client.make_bucket(bucket)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
