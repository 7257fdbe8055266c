"""An in-memory S3 client for unit tests: the calls the S3 sources make, answered as S3 does.

``list_objects_v2`` through ``get_paginator``: keys in UTF-8 byte order, ``Prefix``,
``Delimiter`` (CommonPrefixes), ``StartAfter``, pages of ``page_size`` keys, each entry with
Key, Size, ETag (quoted, the body's MD5) and LastModified (a datetime, whole seconds, as
S3 lists them); ``get_object``. Objects carry the LastModified a test gives them, so that
a test can say "written late" or "written in the same second" without waiting.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import botocore.exceptions
from botocore.response import StreamingBody


@dataclass
class Stored:
    body: bytes
    modified: float  # epoch seconds

    @property
    def etag(self) -> str:
        return '"' + hashlib.md5(self.body).hexdigest() + '"'  # noqa: S324 - S3's ETag is an MD5


class MemoryS3:
    """The S3 client calls of the sources, over ``objects`` (key -> Stored); ``calls`` counts pages."""

    def __init__(self, page_size: int = 1000) -> None:
        self.objects: dict[str, Stored] = {}
        self.page_size = page_size
        self.pages = 0
        self.listings: list[dict[str, Any]] = []  # the arguments of every listing

    def put(self, key: str, body: bytes, modified: float) -> None:
        self.objects[key] = Stored(body, modified)

    def get_paginator(self, name: str) -> MemoryS3:
        assert name == "list_objects_v2"
        return self

    def paginate(
        self, Bucket: str, Prefix: str = "", Delimiter: str = "", StartAfter: str = ""
    ) -> Iterator[dict[str, Any]]:  # noqa: N803, E501
        self.listings.append({"Prefix": Prefix, "Delimiter": Delimiter, "StartAfter": StartAfter})
        keys = sorted((k for k in self.objects if k.startswith(Prefix)), key=lambda k: k.encode())
        keys = [k for k in keys if not StartAfter or k.encode() > StartAfter.encode()]
        entries: list[tuple[str, str]] = []  # ("key" | "prefix", name)
        for key in keys:
            cut = key.find(Delimiter, len(Prefix)) if Delimiter else -1
            if cut < 0:
                entries.append(("key", key))
            elif not entries or entries[-1] != ("prefix", key[: cut + 1]):
                entries.append(("prefix", key[: cut + 1]))
        for first in range(0, max(len(entries), 1), self.page_size):
            self.pages += 1
            page = entries[first : first + self.page_size]
            yield {
                "Contents": [self._entry(name) for kind, name in page if kind == "key"],
                "CommonPrefixes": [{"Prefix": name} for kind, name in page if kind == "prefix"],
            }

    def _entry(self, key: str) -> dict[str, Any]:
        stored = self.objects[key]
        modified = datetime.fromtimestamp(int(stored.modified), timezone.utc)
        return {"Key": key, "Size": len(stored.body), "ETag": stored.etag, "LastModified": modified}

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:  # noqa: N803
        stored = self.objects.get(Key)
        if stored is None:
            error = {"Error": {"Code": "NoSuchKey", "Message": "The specified key does not exist."}}
            raise botocore.exceptions.ClientError(error, "GetObject")  # type: ignore[arg-type]
        return {"Body": StreamingBody(io.BytesIO(stored.body), len(stored.body)), "ETag": stored.etag}
