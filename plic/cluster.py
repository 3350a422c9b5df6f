"""Independent items of work on a Dask cluster, or here: ``--cluster local:N|tcp://HOST:PORT``.

No home-made scheduler: ``--cluster local:N`` starts a ``distributed.LocalCluster`` of N worker
processes (one thread each), ``--cluster tcp://HOST:PORT`` connects to a running scheduler
(``dask scheduler`` / ``dask worker``, or dask-jobqueue and dask-kubernetes for SLURM and
Kubernetes). Without ``--cluster`` the same items run here, serially or in a process pool.

:func:`run_items` is the one loop every command uses: it runs a picklable function on each
item, calls ``on_result`` in this process as results arrive (in completion order, so the merge
must not depend on it), shows one progress bar over all items, and returns the items that
failed as :class:`ItemError`\\ s naming the item, after the others have completed. A worker
that dies (killed, out of memory) has its items rerun elsewhere by the scheduler; an item that
keeps killing workers fails with the scheduler's ``KilledWorker``.

Workers read inputs and write outputs through paths that every node sees (a shared filesystem
mounted at the same path). :meth:`Cluster.check_paths` refuses to start, with one line, when a
worker cannot see an input file or cannot write to the output folder where this process reads.

``dask[distributed]`` is optional (``pip install 'plic[cluster]'``): imported only when
``--cluster`` is given. This module imports nothing else of the project (layer 0).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import logging
import multiprocessing as mp
import os
import re
import sys
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

CONNECT_TIMEOUT_S = 10.0
INSTALL_HINT = "pip install 'plic[cluster]' (dask[distributed])"
CLUSTER_HELP = ("run the items on Dask: local:N starts N worker processes here, "
                "tcp://HOST:PORT uses a running scheduler (`dask scheduler`); inputs and the "
                "output folder must be on paths every worker sees (default: run here)")
_ADDRESS = re.compile(r"^(tcp|tls)://[^\s/:]+:\d+$")


class ClusterError(Exception):
    """A cluster that cannot be used: the message is one line saying why and what to do."""


@dataclass(frozen=True)
class ClusterSpec:
    """``local`` with ``workers`` processes, or a scheduler ``address``."""

    address: str = ""
    workers: int = 0

    @property
    def local(self) -> bool:
        return not self.address

    def __str__(self) -> str:
        return f"local:{self.workers}" if self.local else self.address


def parse_cluster(text: str) -> ClusterSpec:
    """``local:N`` (N >= 1), ``local`` (one worker per core) or ``tcp://HOST:PORT``."""
    text = text.strip()
    if text == "local":
        return ClusterSpec(workers=os.cpu_count() or 1)
    if text.startswith("local:"):
        n = text[len("local:"):]
        if not n.isdigit() or int(n) < 1:
            raise ValueError(f"--cluster {text}: local:N needs a worker count N >= 1")
        return ClusterSpec(workers=int(n))
    if _ADDRESS.match(text):
        return ClusterSpec(address=text)
    raise ValueError(f"--cluster {text!r}: give local:N or tcp://HOST:PORT")


def _cluster_type(text: str) -> ClusterSpec:
    try:
        return parse_cluster(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_cluster_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cluster", type=_cluster_type, default=None,
                        metavar="local:N|tcp://HOST:PORT", help=CLUSTER_HELP)


class Cluster:
    """A Dask client for a :class:`ClusterSpec`; a context manager that closes what it started.

    ``processes=False`` (local only) runs the workers as threads of this process: for tests
    whose items release the GIL; the default is processes, as a real cluster has.
    """

    def __init__(self, spec: ClusterSpec | str, *, processes: bool = True,
                 timeout: float | None = None, dashboard: bool = True, log=None):
        self.spec = parse_cluster(spec) if isinstance(spec, str) else spec
        self.processes, self.timeout, self.dashboard = processes, timeout, dashboard
        self.log = log if log is not None else sys.stderr
        self.client = None
        self._local = None

    def __enter__(self) -> Cluster:
        try:
            import distributed
        except ImportError:
            raise ClusterError(f"--cluster needs Dask: {INSTALL_HINT}") from None
        if self.spec.local:
            try:
                self._local = distributed.LocalCluster(
                    n_workers=self.spec.workers, threads_per_worker=1,
                    processes=self.processes, silence_logs=logging.ERROR,
                    dashboard_address=":0")
            except Exception as e:  # noqa: BLE001 - say it in one line
                raise ClusterError(f"could not start a Dask LocalCluster ({self.spec}): "
                                   f"{_describe(e)}") from None
            self.client = distributed.Client(self._local)
        else:
            try:
                self.client = distributed.Client(
                    self.spec.address, timeout=self.timeout or CONNECT_TIMEOUT_S)
            except (OSError, TimeoutError) as e:
                raise ClusterError(
                    f"cannot reach the Dask scheduler at {self.spec.address} "
                    f"({_one_line(e)}): is `dask scheduler` running there and the port "
                    f"open?") from None
        n = len(self.client.scheduler_info().get("workers", {}))
        if n == 0:
            try:
                self.client.wait_for_workers(1, timeout=self.timeout or CONNECT_TIMEOUT_S)
            except Exception:  # noqa: BLE001 - a timeout, said in one line
                self.__exit__()
                raise ClusterError(f"the Dask scheduler at {self.spec} has no workers: start "
                                   f"some with `dask worker {self.spec}`") from None
            n = len(self.client.scheduler_info().get("workers", {}))
        link = self.client.dashboard_link if self.dashboard else None
        print(f"dask: {self.spec} ({n} worker{'s' * (n != 1)}), dashboard: "
              f"{link or 'not shown'}", file=self.log)
        return self

    def __exit__(self, *exc) -> None:
        if self.client is not None:
            self.client.close()
        if self._local is not None:
            self._local.close()
        self.client = self._local = None

    @property
    def scheduler_address(self) -> str:
        return self.client.scheduler.address

    def check_paths(self, inputs: Sequence[str | os.PathLike] = (),
                    outputs: Sequence[str | os.PathLike] = (), sample: int = 50) -> None:
        """Refuse (``ClusterError``) unless every worker sees the input files with the sizes
        this process sees (up to ``sample`` of them, spread over the list) and writes to each
        output folder where this process reads. Checks the workers connected now."""
        files = [str(Path(p).resolve()) for p in _spread(list(inputs), sample)]
        sizes = [os.path.getsize(p) for p in files]
        tokens = {}
        for d in outputs:
            d = Path(d).resolve()
            d.mkdir(parents=True, exist_ok=True)
            token = uuid.uuid4().hex
            (d / f".plic-cluster-check-{token}").write_text(token)
            tokens[str(d)] = token
        try:
            seen = self.client.run(_worker_sees, files, sizes, tokens)
            problems = [f"worker {w}: {msg}" for w, msgs in sorted(seen.items()) for msg in msgs]
            for folder, token in tokens.items():
                for w in sorted(seen):
                    reply = Path(folder) / f".plic-cluster-check-{token}-{_safe(w)}"
                    if not seen[w] and not reply.is_file():
                        problems.append(f"worker {w}: wrote to the output folder {folder}, but "
                                        f"its file does not appear here")
        finally:
            for folder, token in tokens.items():
                for p in Path(folder).glob(f".plic-cluster-check-{token}*"):
                    p.unlink(missing_ok=True)
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise ClusterError(f"{problems[0]}{more}; workers read inputs and write outputs "
                               f"through paths every node sees (a shared filesystem mounted at "
                               f"the same path on each machine)")

    def check_url(self, url: str, timeout: float = 5.0) -> None:
        """Refuse unless every worker gets an HTTP answer (any status) from ``url``."""
        for w, msg in sorted(self.client.run(_worker_reaches, url, timeout).items()):
            if msg:
                raise ClusterError(f"worker {w} cannot reach {url} ({msg}); serve it on an "
                                   f"address every worker reaches")

    def same_on_workers(self, fn: Callable, what: str, *args) -> None:
        """Refuse unless ``fn(*args)`` gives on every worker what it gives here (e.g. codec
        versions: a worker with another ffmpeg would write other streams under the same id)."""
        here = fn(*args)
        for w, value in sorted(self.client.run(fn, *args).items()):
            if value != here:
                raise ClusterError(f"worker {w}: {what} differ from this machine's "
                                   f"({value!r} against {here!r}); install the same versions on "
                                   f"every node")


class OnWorker:
    """``fn`` as a cluster's workers run it: the first call in a process sets glibc's usual
    allocator thresholds back (``tune_malloc``).

    Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which turns off glibc's
    dynamic mmap threshold: every array over 128 KiB is then mmap'ed and zeroed page by page.
    On a distortions item (rate search, PNG, MS-SSIM on a 768 x 512 image) that measured 2.3x
    the CPU time of the same item in a plain process (4.0 s against 1.75 s); with the steady
    state of glibc's dynamic thresholds (mmap 32 MiB, trim 64 MiB) it is 1.75 s again. Done
    per call rather than once at connection, so a worker restarted after a crash gets it too.
    """

    def __init__(self, fn: Callable):
        self.fn = fn

    def __call__(self, item):
        global _TUNED
        if not _TUNED:
            _TUNED = True
            tune_malloc()
        return self.fn(item)


_TUNED = False


def tune_malloc() -> bool:
    """glibc's steady-state malloc thresholds in this process (no-op elsewhere)."""
    import ctypes
    import ctypes.util

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        return bool(libc.mallopt(m_mmap_threshold, 32 << 20)
                    and libc.mallopt(m_trim_threshold, 64 << 20))
    except (OSError, AttributeError):
        return False


def _spread(items: list, n: int) -> list:
    if len(items) <= n:
        return items
    return [items[round(i * (len(items) - 1) / (n - 1))] for i in range(n)]


def _safe(worker: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", worker)


def _worker_sees(files: list[str], sizes: list[int], tokens: dict[str, str],
                 dask_worker=None) -> list[str]:
    """On a worker: what it cannot see (empty: everything). Leaves a reply in each output."""
    msgs = []
    for f, size in zip(files, sizes):
        if not os.path.isfile(f):
            msgs.append(f"cannot see the input {f}")
        elif os.path.getsize(f) != size:
            msgs.append(f"sees another file at {f} ({os.path.getsize(f)} bytes, not {size})")
        if msgs:
            break
    addr = dask_worker.address if dask_worker is not None else "worker"
    for folder, token in tokens.items():
        probe = Path(folder) / f".plic-cluster-check-{token}"
        try:
            if probe.read_text() != token:
                raise OSError("another file")
        except OSError:
            msgs.append(f"cannot see the output folder {folder}")
            continue
        try:
            (Path(folder) / f".plic-cluster-check-{token}-{_safe(addr)}").write_text(token)
        except OSError as e:
            msgs.append(f"cannot write to the output folder {folder} ({_one_line(e)})")
    return msgs


def _worker_reaches(url: str, timeout: float) -> str:
    """On a worker: '' when ``url`` answers over HTTP (any status), else why not."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout):
            return ""
    except urllib.error.HTTPError:
        return ""  # it answered
    except (OSError, ValueError) as e:
        return _one_line(e)


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text or type(e).__name__


@dataclass
class ItemError:
    """An item that failed: its name and why (one line)."""

    index: int
    name: str
    message: str


def run_items(fn: Callable, items: Sequence, on_result: Callable[[int, object], None], *,
              names: Sequence[str] | None = None, cluster: Cluster | None = None,
              jobs: int = 1, desc: str = "items", unit: str = "item",
              progress: bool = True) -> list[ItemError]:
    """``fn(item)`` for every item: on ``cluster``, else in a pool of ``jobs`` spawned
    processes (1: in this process). ``on_result(index, result)`` runs here for each success;
    failures come back sorted by item, each naming it. ``KeyboardInterrupt`` cancels what is
    left and propagates (the caller keeps what was merged: a rerun does the rest)."""
    names = list(names) if names is not None else [str(i) for i in range(len(items))]
    errors: list[ItemError] = []
    bar = _bar(len(items), desc, unit, progress)
    try:
        for i, ok, value in _results(fn, items, cluster, jobs):
            if ok:
                try:
                    on_result(i, value)
                except Exception as e:  # noqa: BLE001 - a bad result loses only its item
                    errors.append(ItemError(i, names[i], f"{type(e).__name__}: {_one_line(e)}"))
            else:
                errors.append(ItemError(i, names[i], value))
            bar.update(1)
    finally:
        bar.close()
    return sorted(errors, key=lambda e: e.index)


def _describe(e: BaseException) -> str:
    name = type(e).__name__
    return f"{name}: {_one_line(e)}" if str(e) else name


def _results(fn, items, cluster, jobs) -> Iterable[tuple[int, bool, object]]:
    if cluster is not None:
        yield from _dask_results(fn, items, cluster.client)
    elif jobs <= 1 or len(items) <= 1:
        for i, item in enumerate(items):
            try:
                yield i, True, fn(item)
            except Exception as e:  # noqa: BLE001 - one item's failure must not stop the rest
                yield i, False, _describe(e)
    else:
        # spawn: forking a parent that has loaded torch's thread pools can deadlock
        with cf.ProcessPoolExecutor(max_workers=min(jobs, len(items)),
                                    mp_context=mp.get_context("spawn")) as ex:
            futures = {ex.submit(fn, item): i for i, item in enumerate(items)}
            try:
                for fut in cf.as_completed(futures):
                    try:
                        yield futures[fut], True, fut.result()
                    except Exception as e:  # noqa: BLE001 - a dead worker loses only its item
                        yield futures[fut], False, _describe(e)
            except BaseException:
                ex.shutdown(wait=False, cancel_futures=True)
                raise


def _dask_results(fn, items, client) -> Iterable[tuple[int, bool, object]]:
    from distributed import as_completed

    prefix = getattr(fn, "__name__", "item").strip("_") or "item"
    run_id = uuid.uuid4().hex[:8]
    futures = client.map(OnWorker(fn), list(items), pure=False,
                         key=[f"{prefix}-{run_id}-{i}" for i in range(len(items))])
    index = {f.key: i for i, f in enumerate(futures)}
    try:
        for fut in as_completed(futures):
            i = index[fut.key]
            if fut.status == "finished":
                yield i, True, fut.result()
            elif fut.status == "error":
                yield i, False, _describe(fut.exception())
            else:
                yield i, False, f"{fut.status} (the scheduler lost it)"
            fut.release()
    except BaseException:
        client.cancel(futures)
        raise


def _bar(total: int, desc: str, unit: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled or total == 0,
                file=sys.stderr)


def error_summary(errors: Sequence[ItemError], total: int, limit: int = 20) -> list[str]:
    """Lines for stderr: how many items failed, then each one (up to ``limit``) by name."""
    if not errors:
        return []
    lines = [f"{len(errors)} of {total} items failed (the others completed; a rerun retries "
             f"only these):"]
    lines += [f"  {e.name}: {e.message}" for e in errors[:limit]]
    if len(errors) > limit:
        lines.append(f"  ... and {len(errors) - limit} more")
    return lines
