"""A real S3-compatible server on loopback (moto in server mode): the ``object_store`` fixture.

moto runs as its own process and is spoken to over HTTP by boto3, exactly as an app
server would speak to S3 or MinIO; nothing in the app is patched.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
import requests

from tests.mail import free_port

#: moto accepts any credentials; boto3 insists on having some.
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "clinic-saas-test",
    "AWS_SECRET_ACCESS_KEY": "clinic-saas-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass
class ObjectStore:
    """The running server, and a bucket made for one test."""

    endpoint: str
    bucket: str

    def client(self) -> Any:
        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1")

    def keys(self) -> list[str]:
        listed = self.client().list_objects_v2(Bucket=self.bucket)
        return sorted(item["Key"] for item in listed.get("Contents", []))

    def read(self, key: str) -> bytes:
        return self.client().get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def settings(self, prefix: str = "") -> dict[str, Any]:
        """App settings that keep photos in this bucket."""
        return {
            "PHOTO_STORE": "s3",
            "PHOTO_S3_BUCKET": self.bucket,
            "PHOTO_S3_PREFIX": prefix,
            "PHOTO_S3_ENDPOINT_URL": self.endpoint,
            "PHOTO_S3_REGION": "us-east-1",
        }


@pytest.fixture(scope="session")
def object_store_server() -> Iterator[str]:
    """Start ``moto_server`` on a free loopback port for the run; return its address."""
    for name, value in CREDENTIALS.items():
        os.environ.setdefault(name, value)
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"{endpoint}/moto-api/", timeout=1)
                break
            except requests.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the S3-compatible server did not start") from None
                time.sleep(0.2)
        yield endpoint
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def object_store(object_store_server: str, monkeypatch: pytest.MonkeyPatch) -> ObjectStore:
    """A new, empty bucket on the loopback server."""
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    store = ObjectStore(object_store_server, f"photos-{uuid.uuid4().hex[:12]}")
    store.client().create_bucket(Bucket=store.bucket)
    return store
