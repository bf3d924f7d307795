"""A real S3 API on loopback for the tests: moto's server mode in its own process.

``moto_server`` answers the S3 REST API (and IAM, STS) as AWS does, over HTTP on 127.0.0.1;
boto3 talks to it through ``AWS_ENDPOINT_URL_S3`` like to any S3-compatible store. Until
``enforce_iam()`` it accepts any credentials; after, every request is signed-checked and
authorised against the IAM policies created in it (moto's ``/moto-api/reset-auth``).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.harness.servers import HOST, answers, free_port, serve

REGION = "us-east-1"
# moto's root user accepts any key until IAM is enforced; these are its placeholders.
ADMIN = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@dataclass(frozen=True)
class MotoServer:
    url: str

    def client(self, service: str = "s3", **credentials: str) -> Any:
        import boto3

        return boto3.client(service, endpoint_url=self.url, region_name=REGION, **(credentials or ADMIN))

    def enforce_iam(self) -> None:
        """From now on, requests need the keys of an IAM user whose policies allow them."""
        httpx.post(f"{self.url}/moto-api/reset-auth", content=b"0", timeout=10).raise_for_status()

    def env(self, access_key_id: str, secret_access_key: str) -> dict[str, str]:
        """Environment for a child process using this store with the given keys, nothing else:
        no profile or config file, no instance-metadata lookups (no network beyond loopback)."""
        return {
            "AWS_ENDPOINT_URL_S3": self.url,
            "AWS_ACCESS_KEY_ID": access_key_id,
            "AWS_SECRET_ACCESS_KEY": secret_access_key,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        }


@contextlib.contextmanager
def moto_server(log_path: Path | None = None) -> Iterator[MotoServer]:
    """``moto_server`` on a free loopback port until the block ends."""
    port = free_port()
    argv = [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(port)]
    with serve(argv, port=port, log_path=log_path, ready_path="/moto-api/", ready=answers) as server:
        yield MotoServer(server.url)
