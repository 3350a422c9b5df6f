"""Twin training (issue 26): an MSE twin and a perceptual model from one pretraining, with equal
compute after it, shipped with provenance that names the track and the loss, and picked up by the
distortions as two codecs. The `tiny` preset on 64 px crops of the built-in samples."""

from __future__ import annotations

import numpy as np
import torch

from codec import api
from codec.train.loop import train
from codec.train.ship import ship
from distortions.checkpoints import choose_learned
from plic.checkpoint import load_checkpoint
from plic.fsio import sha256_file

from ...forge import ToyMetric
from .test_train import tiny

torch.set_num_threads(1)


def test_twins_share_their_start_and_compute_and_differ_only_by_the_loss(tmp_path):
    pre = dict(loss="mse", steps=2, val_every=2)
    train(tiny(tmp_path, name="pre", **pre), progress=False)
    start = tmp_path / "pre.pt"
    ship(tmp_path / "pre", start)

    folder = tmp_path / "ckpts"
    twin = dict(track="0.15", steps=3, val_every=3, init=str(start), perceptual_start=0.0,
                adversarial_start=0.0)
    for loss in ("mse", "full"):
        metric = ToyMetric() if loss == "full" else None
        train(tiny(tmp_path, name=f"twin-{loss}", loss=loss, **twin), metric=metric,
              progress=False)
        ship(tmp_path / f"twin-{loss}", folder / f"hific-tiny-0.15-{loss}.pt")

    ck = {loss: load_checkpoint(folder / f"hific-tiny-0.15-{loss}.pt", kind="codec")
          for loss in ("mse", "full")}
    prov = {k: v["provenance"] for k, v in ck.items()}
    # one start, equal compute after it
    assert prov["mse"]["init_from"]["sha256"] == prov["full"]["init_from"]["sha256"] \
        == sha256_file(start)
    assert prov["mse"]["steps"] == prov["full"]["steps"] == 3
    assert prov["mse"]["total_steps"] == prov["full"]["total_steps"] == 5
    # the provenance names the track and the loss; only the loss (and its stages) differ
    assert prov["mse"]["track"] == prov["full"]["track"] == "0.15"
    assert prov["mse"]["train_config"]["loss"] == "mse"
    assert prov["full"]["train_config"]["loss"] == "full"
    diff = {k for k, v in prov["mse"]["train_config"].items()
            if prov["full"]["train_config"][k] != v}
    assert diff == {"loss", "out"}
    assert "--loss full" in prov["full"]["command"] and "--loss full" not in prov["mse"]["command"]
    # no machine's folders in a shipped file
    assert not any(str(tmp_path) in str(p) for p in prov.values())
    # the adversarial and perceptual terms moved the weights: the twins are different codecs
    a, b = ck["mse"]["state_dict"], ck["full"]["state_dict"]
    assert any(not torch.equal(a[k], b[k]) for k in a)

    # the distortions pick both up, as two learned codecs that code an image through the API
    chosen = choose_learned(None, folder).codecs
    assert set(chosen) == {"learned-hific-tiny-0.15-mse", "learned-hific-tiny-0.15-full"}
    img = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)
    for path in chosen.values():
        model = api.load(path)
        enc = api.encode(img, model)
        assert api.decode(enc.data, model).image.shape == img.shape
