"""The benchmark's exporter files: Cato-like events in zips, made once and cached.

A data set is a folder under ``benchmarks/out/data/`` holding, for each of its files, the
events of one shape (``events.SHAPES``) zipped with Info-ZIP's ``zip`` (default level 6, as
the exporter's files are deflated): ``pw/CATO<20 digits>.zip`` with ZipCrypto (``zip -P``)
and, when asked for, ``plain/CATO<20 digits>.zip`` without. ``manifest.json`` records the keys and how many
events of which length each holds, so the bytes a run must deliver can be computed exactly
for any header. A folder whose manifest exists is complete and is reused.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from events import cef_lines, shape_lines

PASSWORD = "cato-bench-secret"
FIRST_SEQUENCE = 9_990  # the sequence numbers cross 9999 -> 10000, as in the demo


@dataclass(frozen=True)
class DataSet:
    """A cached set of exporter files and what they hold."""

    folder: Path
    manifest: dict[str, Any]

    @property
    def events(self) -> int:
        return int(self.manifest["events"])

    @property
    def text_bytes(self) -> int:
        """Bytes of event text with line endings: what ``unzip -p`` writes."""
        return int(self.manifest["text_bytes"])

    @property
    def lengths(self) -> Counter[int]:
        """How many events have each length (bytes, without the line ending)."""
        return Counter({int(k): v for k, v in self.manifest["lengths"].items()})

    def keys(self, variant: str) -> list[str]:
        return [f"{variant}/{name}" for name in self.manifest["files"]]


def _make_file(
    folder: Path, sequence: int, first: int, count: int, variants: tuple[str, ...], shape: str
) -> Counter[int]:
    """Write one file's events, zip them per variant, and return the events' lengths."""
    name = f"CATO{sequence:020d}"
    member = folder / "tmp" / f"{name}.log"  # the name the events have inside the zip
    lengths: Counter[int] = Counter()
    with open(member, "wb", buffering=1 << 20) as handle:
        block: list[bytes] = []
        for line in shape_lines(shape, first, count) if shape else cef_lines(first, count):
            data = line.encode("utf-8")
            lengths[len(data) - 1] += 1
            block.append(data)
            if len(block) == 10_000:
                handle.write(b"".join(block))
                block = []
        handle.write(b"".join(block))
    jobs = []
    for variant in variants:
        password = ["-P", PASSWORD] if variant == "pw" else []
        target = folder / variant / f"{name}.zip"
        jobs.append(subprocess.Popen(["zip", "-q", "-j", "-X", *password, str(target), str(member)]))
    for job in jobs:
        if job.wait() != 0:
            raise RuntimeError(f"zip failed for {member}")
    member.unlink()
    return lengths


def build(
    folder: Path, events: int, files: int, variants: tuple[str, ...] = ("pw", "plain"), shape: str = ""
) -> DataSet:
    """The data set in *folder*: reused if complete, else generated (a few seconds per 1M events)."""
    manifest_path = folder / "manifest.json"
    if manifest_path.exists():
        return DataSet(folder, json.loads(manifest_path.read_text()))
    shutil.rmtree(folder, ignore_errors=True)
    for sub in ("tmp", *variants):
        (folder / sub).mkdir(parents=True)
    per_file = -(-events // files)
    plan = []
    for index in range(files):
        first = index * per_file
        count = min(per_file, events - first)
        if count > 0:
            plan.append((FIRST_SEQUENCE + index, first, count))
    lengths: Counter[int] = Counter()
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        futures = [
            pool.submit(_make_file, folder, seq, first, count, variants, shape) for seq, first, count in plan
        ]
        for future in futures:
            lengths.update(future.result())
    (folder / "tmp").rmdir()
    manifest = {
        "events": sum(lengths.values()),
        "text_bytes": sum((length + 1) * n for length, n in lengths.items()),
        "files": [f"CATO{seq:020d}.zip" for seq, _, _ in plan],
        "variants": list(variants),
        "shape": shape,
        "password": PASSWORD,
        "zip_bytes": {
            variant: sum(p.stat().st_size for p in (folder / variant).iterdir()) for variant in variants
        },
        "lengths": {str(k): v for k, v in sorted(lengths.items())},
    }
    manifest_path.write_text(json.dumps(manifest, indent=1))
    return DataSet(folder, manifest)
