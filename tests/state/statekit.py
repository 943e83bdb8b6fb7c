"""Helpers of the state tests (also used by tests/flows/test_two_machines.py): a serial moto S3 server.

moto's ``ThreadedMotoServer`` (the session's ``moto_endpoint``) answers each request in its own thread,
and its ``PutObject`` checks ``If-None-Match`` / ``If-Match`` and then writes without a lock, so two
conditional writes arriving in the same instant can both pass: a property of the mock, not of S3
(which serialises the writes of one key). :func:`serial_moto_server` serves one request at a time
(werkzeug with ``threaded=False``, HTTP/1.0, a connection per request), so every conditional write is
checked and applied atomically, as S3 does; races between clients are still real (many threads or
processes send at once, and the server decides in arrival order).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@contextmanager
def serial_moto_server() -> Iterator[str]:
    """A moto S3 server on 127.0.0.1 that handles one request at a time; yields its endpoint URL."""
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    app = DomainDispatcherApplication(create_backend_app)
    server = make_server("127.0.0.1", 0, app, threaded=False, request_handler=MotoRequestHandler)
    thread = threading.Thread(target=server.serve_forever, name="serial-moto", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()


def fresh_bucket(endpoint: str, bucket: str) -> object:
    """A boto3 client of ``endpoint`` and an empty ``bucket`` (created, or emptied)."""
    import boto3

    client = boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        region_name=AWS_ENV["AWS_DEFAULT_REGION"],
    )
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    if bucket in existing:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for obj in page.get("Contents", []):
                client.delete_object(Bucket=bucket, Key=obj["Key"])
    else:
        client.create_bucket(Bucket=bucket)
    return client
