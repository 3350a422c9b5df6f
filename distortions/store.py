"""The output folder: content-addressed files, ``index.csv``, ``searches.csv`` and ``meta.json``.

Layout under ``--out`` (default ``runs/distortions``)::

    index.csv            one row per distinct (reference, crop, codec, codec_version, param)
    searches.csv         one row per (reference, crop, codec, codec_version, target): the dist_id
                         it landed on, or ``unreachable``; this is what makes reruns resumable
    meta.json            inputs' hashes, config, codec versions (rewritten only when it changes)
    refs/                cropped references (full images are referenced where they are)
    images/ab/<sha>.png  decoded images, named by the sha256 of the PNG file
    streams/ab/<sha>.EXT bitstreams, named by the sha256 of the coded file

Every file is written atomically, so a crash leaves either the old file or the new one.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from plic.fsio import atomic_write_bytes, atomic_write_text, sha256_bytes, sha256_file
from plic.tables import read_table, rel_path, resolve_path, write_table

from .schema import INDEX_COLUMNS, INDEX_ID

SEARCH_COLUMNS = ["search_id", "ref_id", "ref_sha256", "crop", "codec", "codec_version",
                  "target_bpp", "status", "dist_id", "param", "bpp"]
SEARCH_ID = "search_id"
STATUS_OK, STATUS_UNREACHABLE = "ok", "unreachable"


def crop_key(crop: tuple[int, int, int] | None) -> str:
    """``"x,y,size"`` for a crop, ``""`` for the full image."""
    return "" if crop is None else ",".join(str(int(v)) for v in crop)


def _hash(*parts: str) -> str:
    return hashlib.sha256(json.dumps(list(parts)).encode()).hexdigest()[:20]


def make_dist_id(ref_sha256: str, crop: str, codec: str, codec_version: str, param: str) -> str:
    """Stable id of (reference content, crop, codec, codec_version, param)."""
    return "d" + _hash("dist", ref_sha256, crop, codec, codec_version, param)


def make_search_id(ref_sha256: str, crop: str, codec: str, codec_version: str,
                   target_bpp: float) -> str:
    return "s" + _hash("search", ref_sha256, crop, codec, codec_version, f"{target_bpp:.6g}")


class Store:
    """One output folder. Paths in its tables are relative to the folder."""

    def __init__(self, out: str | Path):
        self.out = Path(out)
        self.index_path = self.out / "index.csv"
        self.search_path = self.out / "searches.csv"
        self.meta_path = self.out / "meta.json"

    # files ---------------------------------------------------------------------------------
    def put_image(self, png: bytes) -> tuple[Path, str]:
        sha = sha256_bytes(png)
        path = self.out / "images" / sha[:2] / f"{sha}.png"
        if not (path.is_file() and sha256_file(path) == sha):
            atomic_write_bytes(path, png)
        return path, sha

    def put_stream(self, data: bytes, ext: str) -> Path:
        sha = sha256_bytes(data)
        path = self.out / "streams" / sha[:2] / f"{sha}.{ext}"
        if not (path.is_file() and sha256_file(path) == sha):
            atomic_write_bytes(path, data)
        return path

    def put_ref(self, name: str, png: bytes) -> Path:
        path = self.out / "refs" / f"{name}.png"
        if not (path.is_file() and sha256_file(path) == sha256_bytes(png)):
            atomic_write_bytes(path, png)
        return path

    def rel(self, path: str | Path) -> str:
        return rel_path(path, self.index_path)

    def resolve(self, value: str) -> Path:
        return resolve_path(value, self.index_path)

    def row_is_intact(self, row: dict) -> bool:
        """The decoded PNG and the bitstream of a row exist, and the PNG matches its hash."""
        img, stream = self.resolve(row["path"]), self.resolve(row["bitstream_path"])
        return img.is_file() and stream.is_file() and sha256_file(img) == row["sha256"]

    # tables --------------------------------------------------------------------------------
    def read_index(self) -> list[dict]:
        if not self.index_path.is_file():
            return []
        return read_table(self.index_path, INDEX_COLUMNS, INDEX_ID).to_dict("records")

    def read_searches(self) -> list[dict]:
        if not self.search_path.is_file():
            return []
        return read_table(self.search_path, SEARCH_COLUMNS, SEARCH_ID).to_dict("records")

    def _write_if_changed(self, path: Path, rows: list[dict], columns, id_column) -> bool:
        rows = sorted(rows, key=lambda r: r[id_column])
        if path.is_file():
            old = read_table(path, columns, id_column).to_dict("records")
            if sorted(old, key=lambda r: r[id_column]) == [_as_text(r) for r in rows]:
                return False
        write_table(path, rows, columns, id_column)
        return True

    def write_index(self, rows: list[dict]) -> bool:
        """Write index.csv unless it already holds exactly these rows; True if written."""
        return self._write_if_changed(self.index_path, rows, INDEX_COLUMNS, INDEX_ID)

    def write_searches(self, rows: list[dict]) -> bool:
        return self._write_if_changed(self.search_path, rows, SEARCH_COLUMNS, SEARCH_ID)

    def write_meta(self, meta: dict) -> bool:
        text = json.dumps(meta, indent=2, sort_keys=True) + "\n"
        if self.meta_path.is_file() and self.meta_path.read_text() == text:
            return False
        atomic_write_text(self.meta_path, text)
        return True


def _as_text(row: dict) -> dict:
    """A row as read_table returns it (strings, '' for None), to compare with a file."""
    return {k: "" if v is None else (repr(v) if isinstance(v, float) else str(v))
            for k, v in row.items()}
