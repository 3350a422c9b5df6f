"""One registry per kind of thing: a model or a codec backend registered once shows up wherever
its kind is listed (``--help``, the trainer's baselines, ``make distortions``), and leaves no trace
when removed."""

from __future__ import annotations

import numpy as np
import pytest

from codec import models
from codec.models.base import LatentModel
from codec.models.bmshj2018 import BmshjConfig
from distortions import backends
from distortions.backends.base import Backend, ParamSpec

DUMMY_MODEL = "dummy-test-model"
DUMMY_BACKEND = "dummy-test-codec"


@pytest.fixture
def wide_help(monkeypatch):
    monkeypatch.setenv("COLUMNS", "2000")  # argparse wraps (and splits at '-') to the terminal


@pytest.fixture
def dummy_model():
    @models.register(DUMMY_MODEL, baseline=True, anchor="dummy-anchor")
    class Dummy(LatentModel):
        presets = {"tiny": BmshjConfig(preset="tiny")}

    yield Dummy
    models.unregister(DUMMY_MODEL)
    assert DUMMY_MODEL not in models.names()


@pytest.fixture
def dummy_backend():
    class Dummy(Backend):
        name, ext, param, version = DUMMY_BACKEND, "raw", ParamSpec("q", 1, 2), "1"

        def encode(self, image: np.ndarray, param: float) -> bytes:
            return image.tobytes()

    backends.register(DUMMY_BACKEND, lambda options, name: Dummy(), default=True, classic=True)
    yield Dummy
    backends.unregister(DUMMY_BACKEND)
    assert DUMMY_BACKEND not in backends.names()


def test_a_registered_model_is_listed_everywhere(dummy_model, wide_help):
    from codec.train.cli import build_parser
    from codec.train.config import TrainConfig
    from codec.train.rd import build_parser as rd_parser

    assert models.model_class(DUMMY_MODEL) is dummy_model and dummy_model.name == DUMMY_MODEL
    help_text = build_parser().format_help()
    assert f"registered: bmshj2018-factorized, bmshj2018-hyperprior, {DUMMY_MODEL}" in help_text
    assert f"the baselines: bmshj2018-factorized, bmshj2018-hyperprior, {DUMMY_MODEL}" in help_text
    assert DUMMY_MODEL in models.baselines()
    assert TrainConfig(model=DUMMY_MODEL, preset="tiny").resolved().loss == "mse"
    assert models.anchors()[DUMMY_MODEL] == "dummy-anchor"
    assert f"{DUMMY_MODEL}=dummy-anchor" in rd_parser().format_help()


def test_the_built_in_models_declare_their_role():
    assert models.baselines() == ["bmshj2018-factorized", "bmshj2018-hyperprior", "mbt2018"]
    assert models.anchors() == {
        "bmshj2018-hyperprior": "compressai-bmshj2018-hyperprior_mse_cpu",
        "mbt2018": "compressai-mbt2018_mse_cpu"}
    assert models.model_class("mbt2018").__module__ == "codec.models.mbt2018"
    for name in models.names():  # every model's module lives in codec/models/
        assert models.model_class(name).__module__.startswith("codec.models.")


def test_a_malformed_model_registration_fails_loudly():
    with pytest.raises(ValueError, match="model name"):
        models.register("Hific ")
    with pytest.raises(TypeError, match="baseline"):
        models.register("x-model", baseline="yes")
    with pytest.raises(TypeError, match="presets"):
        models.register("x-model")(type("NoPresets", (LatentModel,), {}))
    with pytest.raises(ValueError, match="already registered"):
        models.register("hific")(type("Other", (LatentModel,), {"presets": {"tiny": None}}))
    assert "x-model" not in models.names()


def test_a_registered_backend_is_listed_everywhere(dummy_backend, wide_help):
    from distortions.__main__ import _codecs
    from distortions.__main__ import build_parser as distortions_parser
    from distortions.checkpoints import select_codecs

    help_text = distortions_parser().format_help()  # `make distortions` runs python -m distortions
    assert f"learned, {DUMMY_BACKEND}, learned-NAME" in help_text
    assert f"(default: jpeg,webp,avif,jxl,hevc-bpgcfg,{DUMMY_BACKEND}, hevc-bpgcfg-pd when" \
        in help_text
    assert _codecs(DUMMY_BACKEND) == (DUMMY_BACKEND,)
    assert select_codecs(None, {}, backends.default_names())[0][-1] == DUMMY_BACKEND
    assert DUMMY_BACKEND in backends.classic_names()
    b = backends.make_backend(DUMMY_BACKEND)
    assert isinstance(b, dummy_backend) and b.encode(np.zeros((2, 2, 3), np.uint8), 1)


def test_the_built_in_backends_keep_their_order_and_sets():
    assert backends.names() == ("jpeg", "jpeg444", "webp", "avif", "jxl", "hevc-bpgcfg", "bpg",
                                "hevc-bpgcfg-pd", "learned")
    assert backends.default_names() == ("jpeg", "webp", "avif", "jxl", "hevc-bpgcfg")
    assert backends.classic_names() == ("jpeg", "jpeg444", "webp", "avif", "jxl", "hevc-bpgcfg")
    assert type(backends.make_backend("hevc")).__name__ == "HevcBpgcfgBackend"  # the alias
    assert backends.is_known("learned-mine") and not backends.is_known("hevc")


def test_a_malformed_backend_registration_fails_loudly():
    with pytest.raises(ValueError, match="already registered"):
        backends.register("jpeg", lambda o, n: None)
    with pytest.raises(ValueError, match="already registered"):
        backends.register("x-codec", lambda o, n: None, aliases=("hevc",))
    with pytest.raises(ValueError, match="backend name"):
        backends.register("JPEG 2000", lambda o, n: None)
    with pytest.raises(TypeError, match="callable"):
        backends.register("x-codec", "pillow_codecs.JpegBackend")
    assert "x-codec" not in backends.names()
