"""plic.fsio: atomic writes leave whole files with the mode a plain open() would give."""

import os
import stat

from plic import fsio


def test_atomic_write_has_the_mode_of_a_plain_write(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    written = fsio.atomic_write_text(tmp_path / "atomic.txt", "x")
    mode = stat.S_IMODE(os.stat(written).st_mode)
    assert mode == stat.S_IMODE(os.stat(plain).st_mode)
    assert mode & stat.S_IRGRP  # not mkstemp's 0600 under the usual umask 022


def test_failed_write_leaves_nothing(tmp_path):
    def boom(f):
        f.write(b"half")
        raise RuntimeError("disk full")

    try:
        fsio._atomic(tmp_path / "out.bin", boom)
    except RuntimeError:
        pass
    assert list(tmp_path.iterdir()) == []
