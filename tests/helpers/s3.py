"""A moto S3 server on loopback for tests of object storage (moto[server] is in the dev extra)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import pytest

#: the AWS_* environment a moto server accepts (the endpoint is added when the server starts)
ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@contextlib.contextmanager
def moto_s3(bucket: str, env: dict[str, str] | None = None) -> Iterator[Any]:
    """A moto S3 server on 127.0.0.1 (a free port), the AWS_* environment (``env``, default :data:`ENV`) pointing
    at it, and ``bucket`` created; yields a pyarrow S3FileSystem client of it."""
    from moto.server import ThreadedMotoServer
    from pyarrow import fs

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    mp = pytest.MonkeyPatch()
    try:
        for k, v in {**(ENV if env is None else env), "AWS_ENDPOINT_URL": f"http://{host}:{port}"}.items():
            mp.setenv(k, v)
        client = fs.S3FileSystem(
            endpoint_override=f"{host}:{port}",
            scheme="http",
            access_key="testing",
            secret_key="testing",
            region="us-east-1",
            allow_bucket_creation=True,
        )
        client.create_dir(bucket)
        yield client
    finally:
        mp.undo()
        server.stop()
