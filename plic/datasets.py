"""Image sets: manifests, the ``--data``/``--data-root`` options, verification and fetching.

A manifest is a CSV in ``data_manifests/`` with columns ``MANIFEST_COLUMNS``. A row's ``path`` is
looked up relative to the manifest's own folder first (the built-in ``samples`` set ships there),
then relative to the data root. The data root is ``--data-root``, else ``$PLIC_DATA_ROOT``, else
``../shared/data`` beside the checkout when it exists. Every file is checked against its sha256.

``--data`` accepts a manifest name (``samples``, ``kodak``, ``bsds500``), a manifest path, or a
folder of images (ids from file names, hashes computed on the spot).

Command line::

    python -m plic.datasets list
    python -m plic.datasets verify kodak [--data-root DIR]
    python -m plic.datasets fetch kodak --data-root DIR      # needs internet
    python -m plic.datasets make-manifest FOLDER --out CSV [--prefix P] [--split S] ...
    python -m plic.datasets crop samples --size 256 --out DIR   # centre crops as a new set
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .cli import command, parser
from .fsio import sha256_file
from .image_io import ImageReadError, image_size
from .paths import DATA_ROOT_ENV, MANIFEST_DIR, REPO_ROOT

MANIFEST_COLUMNS = ["id", "path", "sha256", "width", "height", "split", "license", "source_url"]
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm"}
DEFAULT_DATA = "samples"


class DataError(ValueError):
    """A data set that cannot be used as asked: names the file and the fix."""


@dataclass(frozen=True)
class ImageRecord:
    id: str
    path: Path
    sha256: str
    width: int
    height: int
    split: str = ""
    license: str = ""
    source_url: str = ""


def default_data_root(explicit: str | os.PathLike | None = None) -> Path | None:
    if explicit:
        return Path(explicit)
    if os.environ.get(DATA_ROOT_ENV):
        return Path(os.environ[DATA_ROOT_ENV])
    shared = REPO_ROOT.parent / "shared" / "data"
    return shared if shared.is_dir() else None


def manifest_names() -> list[str]:
    return sorted(p.stem for p in MANIFEST_DIR.glob("*.csv"))


def _locate(rel: str, manifest: Path, root: Path | None) -> Path:
    p = Path(rel)
    if p.is_absolute():
        return p
    local = manifest.parent / p
    if local.exists() or root is None:
        return local
    return root / p


def read_manifest(manifest: str | os.PathLike, data_root=None) -> list[ImageRecord]:
    from .tables import read_table

    manifest = Path(manifest)
    df = read_table(manifest, MANIFEST_COLUMNS, id_column="id")
    root = default_data_root(data_root)
    return [ImageRecord(id=r.id, path=_locate(r.path, manifest, root), sha256=r.sha256,
                        width=int(r.width), height=int(r.height), split=r.split,
                        license=r.license, source_url=r.source_url)
            for r in df.itertuples(index=False)]


def scan_folder(folder: str | os.PathLike) -> list[ImageRecord]:
    """A folder of images as records (ids from file stems; hashes and sizes computed)."""
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"{folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found")
    records, seen = [], {}
    for p in files:
        rid = p.relative_to(folder).with_suffix("").as_posix().replace("/", "-")
        if rid in seen:
            raise DataError(f"{folder}: two images share the id {rid!r}: {seen[rid]} and {p}")
        seen[rid] = p
        try:
            w, h = image_size(p)
        except (OSError, ImageReadError) as e:
            raise DataError(f"{p}: not a readable image ({e}); replace or remove the file") from e
        records.append(ImageRecord(rid, p, sha256_file(p), w, h))
    return records


def verify(records: list[ImageRecord], name: str = "data set") -> None:
    """Raise one DataError listing every missing or altered file, with the fix."""
    missing = [r for r in records if not r.path.is_file()]
    altered = [r for r in records if r.path.is_file() and sha256_file(r.path) != r.sha256]
    if not missing and not altered:
        return
    lines = [f"{name}: {len(missing)} missing and {len(altered)} altered file(s)"]
    lines += [f"  missing: {r.path} (id {r.id})" for r in missing[:10]]
    lines += [f"  altered (sha256 mismatch): {r.path} (id {r.id})" for r in altered[:10]]
    if len(missing) + len(altered) > 20:
        lines.append("  ...")
    lines.append(f"Fix: pass --data-root DIR (or set {DATA_ROOT_ENV}) to the folder that holds "
                 f"the files, or download them with `python -m plic.datasets fetch {name} "
                 f"--data-root DIR` on a machine with internet; replace altered files.")
    raise DataError("\n".join(lines))


def resolve_data(data: str = DEFAULT_DATA, data_root=None, split: str | None = None,
                 check: bool = True) -> list[ImageRecord]:
    """Resolve a ``--data`` value to verified image records (optionally one split)."""
    candidate = MANIFEST_DIR / f"{data}.csv"
    path = Path(data)
    if "/" not in data and candidate.is_file():
        records, name = read_manifest(candidate, data_root), data
    elif path.suffix == ".csv" and path.is_file():
        records, name = read_manifest(path, data_root), str(path)
    elif path.is_dir():
        records, name, check = scan_folder(path), str(path), False
    else:
        raise DataError(f"--data {data!r}: not a manifest name ({', '.join(manifest_names())}), "
                        f"a manifest .csv file, or a folder of images")
    if split:
        records = [r for r in records if r.split == split]
        if not records:
            raise DataError(f"{name}: no images in split {split!r}")
    if check:
        verify(records, name)
    return records


def add_data_args(parser: argparse.ArgumentParser, default: str = DEFAULT_DATA) -> None:
    """The two options every command that reads images takes."""
    parser.add_argument("--data", default=default,
                        help=f"manifest name ({', '.join(manifest_names())}), manifest .csv, "
                             f"or folder of images (default: {default})")
    parser.add_argument("--data-root", default=None,
                        help=f"folder the manifest paths resolve against (default: "
                             f"${DATA_ROOT_ENV}, else ../shared/data when present)")


def records_from_args(args: argparse.Namespace, split: str | None = None) -> list[ImageRecord]:
    return resolve_data(args.data, args.data_root, split=split)


# ---------------------------------------------------------------------------------------------
# fetching and manifest making

def _download(url: str, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with urllib.request.urlopen(url, timeout=60) as r, tempfile.NamedTemporaryFile(
            dir=dest.parent, delete=False) as f:
        shutil.copyfileobj(r, f)
    os.replace(f.name, dest)


def fetch(name: str, data_root) -> int:
    """Download every missing or altered file of a manifest from its ``source_url``.

    A ``source_url`` of the form ``ARCHIVE_URL#MEMBER`` names a member of a tar archive, which is
    downloaded once per archive.
    """
    if data_root is None:
        raise DataError("fetch needs --data-root (or $PLIC_DATA_ROOT)")
    records = read_manifest(MANIFEST_DIR / f"{name}.csv" if "/" not in name else name, data_root)
    todo = [r for r in records if not r.path.is_file() or sha256_file(r.path) != r.sha256]
    archives: dict[str, Path] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in todo:
            url, _, member = r.source_url.partition("#")
            if not url:
                raise DataError(f"{r.id}: no source_url to fetch from")
            if member:
                if url not in archives:
                    archives[url] = Path(tmp) / f"a{len(archives)}.tar"
                    print(f"downloading {url}", file=sys.stderr)
                    _download(url, archives[url])
                with tarfile.open(archives[url]) as tar:
                    src = tar.extractfile(member)
                    if src is None:
                        raise DataError(f"{url}: no member {member}")
                    r.path.parent.mkdir(parents=True, exist_ok=True)
                    r.path.write_bytes(src.read())
            else:
                print(f"downloading {url}", file=sys.stderr)
                _download(url, r.path)
    verify(records, name)
    return len(todo)


def make_manifest(folder: Path, out: Path, prefix: str = "", split: str = "", license: str = "",
                  url_template: str = "", relative_to: Path | None = None) -> Path:
    """Write a manifest for a folder of images (paths relative to ``relative_to``)."""
    from .tables import write_table

    rows = []
    base = relative_to or out.parent
    for r in scan_folder(folder):
        rel = os.path.relpath(r.path.resolve(), base.resolve())
        rows.append({"id": prefix + r.id, "path": Path(rel).as_posix(), "sha256": r.sha256,
                     "width": r.width, "height": r.height, "split": split, "license": license,
                     "source_url": url_template.format(name=r.path.name, stem=r.path.stem)})
    return write_table(out, rows, MANIFEST_COLUMNS, id_column="id")


def crop_set(records: list[ImageRecord], size: int, out_dir: Path, name: str) -> Path:
    """Centre crops (``size`` x ``size``, or the whole side where the image is smaller) of
    ``records`` as PNGs in ``out_dir``, and their manifest ``out_dir/NAME.csv``; ids are kept.
    Files already there with the same pixels are not rewritten."""
    import numpy as np

    from .image_io import read_image, write_png
    from .tables import write_table

    if size < 1:
        raise DataError(f"crop size must be positive, got {size}")
    out_dir = Path(out_dir)
    rows = []
    for r in records:
        img = read_image(r.path)
        h, w = img.shape[:2]
        ch, cw = min(size, h), min(size, w)
        y, x = (h - ch) // 2, (w - cw) // 2
        crop = np.ascontiguousarray(img[y : y + ch, x : x + cw])
        p = out_dir / f"{r.id}.png"
        if not (p.is_file() and np.array_equal(read_image(p), crop)):
            write_png(p, crop)
        rows.append({"id": r.id, "path": p.name, "sha256": sha256_file(p), "width": cw,
                     "height": ch, "split": r.split, "license": r.license,
                     "source_url": f"centre {cw}x{ch} crop of {r.source_url or r.path.name}"})
    return write_table(out_dir / f"{name}.csv", rows, MANIFEST_COLUMNS, id_column="id")


PROG = "python -m plic.datasets"


@command(PROG)
def main(argv: list[str] | None = None) -> int:
    ap = parser(PROG, __doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="list the built-in manifests")
    for cmd in ("verify", "fetch"):
        p = sub.add_parser(cmd, help=f"{cmd} the files of a manifest")
        p.add_argument("data", help="manifest name or .csv path")
        p.add_argument("--data-root", default=None)
    p = sub.add_parser("make-manifest", help="write a manifest for a folder of images")
    p.add_argument("folder", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--prefix", default="", help="prefix for ids")
    p.add_argument("--split", default="")
    p.add_argument("--license", default="")
    p.add_argument("--url-template", default="", help="source_url, with {name} and {stem}")
    p.add_argument("--relative-to", type=Path, default=None,
                   help="folder the paths are written relative to (default: the manifest's)")
    p = sub.add_parser("crop", help="centre crops of a data set as a new set (PNGs + manifest)")
    p.add_argument("data", help="manifest name, .csv path or folder of images")
    p.add_argument("--size", type=int, required=True, help="side of the square crops in pixels")
    p.add_argument("--out", type=Path, required=True, help="folder of the crops and manifest")
    p.add_argument("--name", default=None, help="manifest name (default DATA-cropSIZE)")
    p.add_argument("--data-root", default=None)
    args = ap.parse_args(argv)
    if args.cmd == "list":
        for n in manifest_names():
            recs = read_manifest(MANIFEST_DIR / f"{n}.csv")
            print(f"{n:12s} {len(recs):5d} images")
    elif args.cmd == "verify":
        recs = resolve_data(args.data, args.data_root)
        print(f"{args.data}: {len(recs)} images verified")
    elif args.cmd == "crop":
        recs = resolve_data(args.data, args.data_root)
        name = args.name or f"{Path(args.data).stem}-crop{args.size}"
        print(f"wrote {crop_set(recs, args.size, args.out, name)} ({len(recs)} crops)")
    elif args.cmd == "fetch":
        n = fetch(args.data, default_data_root(args.data_root))
        print(f"{args.data}: fetched {n} file(s); all verified")
    else:
        out = make_manifest(args.folder, args.out, args.prefix, args.split, args.license,
                            args.url_template, args.relative_to)
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
