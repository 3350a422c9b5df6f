"""CompressAI, the benchmarks' comparison, imported where it is only partly installed.

The ``bench`` extra installs ``compressai==1.2.8`` with ``--no-deps`` (its pinned dependencies
would downgrade numpy), so the modules it imports at package import for its point-cloud and data
set code only may be missing. ``import_compressai_zoo`` imports it with inert placeholders
standing in for those, and removes them again afterwards. Used by ``benchmarks.codec_speed``,
``benchmarks.codec_decode`` and the trainer parity (``benchmarks.train_parity_runs``).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types

# CompressAI 1.2.8 imports these at package import for its point-cloud and dataset code only;
# the [bench] extra installs it --no-deps (its pins would downgrade numpy), so where they are
# missing they are replaced by inert placeholders while compressai is imported
_COMPRESSAI_ONLY = ("torch_geometric", "einops", "requests")


class _Placeholder:
    """Stands for any class, decorator or function of a placeholder module."""

    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, *args, **kwargs):
        return args[0] if len(args) == 1 and callable(args[0]) else self


class _PlaceholderFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in _COMPRESSAI_ONLY:
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        mod = types.ModuleType(spec.name)
        mod.__path__ = []

        def attr(name):
            if name.startswith("__"):
                raise AttributeError(name)
            return _Placeholder

        mod.__getattr__ = attr
        return mod

    def exec_module(self, module):
        pass


def import_compressai_zoo(name: str):
    """CompressAI's ``compressai.zoo.<name>`` factory, or (None, why not). Where its
    point-cloud imports are missing, inert placeholders stand in for them during the import."""
    try:
        return getattr(importlib.import_module("compressai.zoo"), name), None
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] not in _COMPRESSAI_ONLY:
            return None, f"{type(e).__name__}: {e}"
    except Exception as e:
        return None, f"{type(e).__name__}: {e}"
    for mod_name in [m for m in sys.modules if m.split(".")[0] == "compressai"]:
        del sys.modules[mod_name]
    finder = _PlaceholderFinder()
    sys.meta_path.append(finder)
    try:
        return getattr(importlib.import_module("compressai.zoo"), name), None
    except Exception as e:
        return None, f"{type(e).__name__}: {e}"
    finally:
        sys.meta_path.remove(finder)
        for mod_name, mod in list(sys.modules.items()):  # later imports see the real state
            if getattr(getattr(mod, "__spec__", None), "loader", None) is finder:
                del sys.modules[mod_name]
