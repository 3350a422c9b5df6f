"""Per-image features of a study's test pairs, computed once: the cache behind ``active_savings``.

A simulated study asks the same pairs again and again, and ``lin`` fitting only needs, per
(reference, distortion), the per-channel terms of the frozen trunk (``LPIPS.channel_terms``:
d is linear in the weights given them). So each distinct (reference view, distortion view) of a
``trials.csv`` gets, in one trunk pass per image:

- ``terms``: the fitted trunk's channel terms on the whole view (``--fit-trunk``, AlexNet), and
- ``oracle``: the oracle metric's distance (LPIPS ``--oracle-trunk`` v0.1, VGG16 by default),
  and ``oracle_terms``, its trunk's channel terms (other oracle weights cost no trunk pass).

Stored in ``OUT/terms.npz`` with the trials file's hash; a second run with the same trials and
trunks reads it back.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from mturk.schema import TRIALS_COLUMNS, TRIALS_ID
from plic.fsio import atomic_savez, sha256_file
from plic.image_io import read_image, to_tensor
from plic.tables import read_table, resolve_path

from .lpips_model import LPIPS, unit_terms


def test_pairs(trials_csv: str | Path):
    """The label-making rows of a trials table (tests that are not repeats)."""
    df = read_table(trials_csv, TRIALS_COLUMNS, TRIALS_ID)
    return df[(df.kind == "test") & (df.repeat_of == "")].reset_index(drop=True)


def _tensor(path: Path) -> torch.Tensor:
    return to_tensor(read_image(path))


@torch.no_grad()
def pair_terms(trials_csv: str | Path, model: LPIPS, desc: str = "trunk features"
               ) -> tuple[list[tuple[str, str]], np.ndarray]:
    """Per distinct (reference view, distortion view) of the table's test pairs, the model's
    channel terms (K, sum C), one trunk pass per image; keys as written in the table."""
    df = test_pairs(trials_csv)
    by_ref: dict[str, set] = {}
    for r in df.itertuples():
        by_ref.setdefault(r.ref_path, set()).update((r.a_path, r.b_path))
    keys, terms = [], []
    bar = tqdm(total=sum(len(v) for v in by_ref.values()), desc=desc, mininterval=2.0)
    for ref_path in sorted(by_ref):
        f_ref = model.unit_features(_tensor(resolve_path(ref_path, trials_csv)))
        for p in sorted(by_ref[ref_path]):
            f = model.unit_features(_tensor(resolve_path(p, trials_csv)))
            keys.append((ref_path, p))
            terms.append(torch.cat(unit_terms(f_ref, f), 1)[0].numpy())
            bar.update(1)
    bar.close()
    return keys, np.stack(terms).astype(np.float32)


def cached_pair_terms(trials_csv: str | Path, model: LPIPS, cache_dir: str | Path | None,
                      desc: str = "metric features") -> tuple[list[tuple[str, str]], np.ndarray]:
    """``pair_terms``, kept in ``cache_dir/terms-<net>.npz`` when the model's trunk is frozen
    (``lin`` mode: its terms do not change when its linear weights do), keyed by the trials file's
    hash and the trunk's id; a metric whose trunk was fitted (``tune``/``scratch``) or no
    ``cache_dir`` always computes them."""
    if cache_dir is None or model.mode != "lin":
        return pair_terms(trials_csv, model, desc)
    cache = Path(cache_dir) / f"terms-{model.net}.npz"
    key = json.dumps(dict(trials_sha256=sha256_file(trials_csv), trunk_id=model.trunk_id))
    if cache.is_file():
        z = np.load(cache, allow_pickle=False)
        if str(z["key"]) == key:
            return [tuple(k) for k in z["keys"].tolist()], z["terms"]
    keys, terms = pair_terms(trials_csv, model, desc)
    atomic_savez(cache, key=key, keys=np.array(keys), terms=terms)
    return keys, terms


def compute(trials_csv: str | Path, out: str | Path, fit_trunk: str = "alex",
            oracle_trunk: str = "vgg", log=print, need_oracle_terms: bool = False) -> dict:
    """``{"keys": [(ref_path, path)], "terms": (K, sum C), "oracle": (K,), "oracle_terms":
    (K, sum C')}``, cached in
    ``out/terms.npz`` (keys are the view paths as written in the trials table)."""
    out = Path(out)
    cache = out / "terms.npz"
    key = dict(trials_sha256=sha256_file(trials_csv), fit_trunk=fit_trunk,
               oracle_trunk=oracle_trunk)
    if cache.is_file():
        z = np.load(cache, allow_pickle=False)
        has = "oracle_terms" in z.files
        if json.loads(str(z["key"])) == key and (has or not need_oracle_terms):
            return {"keys": [tuple(k) for k in z["keys"].tolist()], "terms": z["terms"],
                    "oracle": z["oracle"], "oracle_terms": z["oracle_terms"] if has else None,
                    "trunk_id": str(z["trunk_id"])}
    fitm = LPIPS.build(fit_trunk, "lin").freeze()
    oracle = LPIPS.build(oracle_trunk, "lin", linear="v0.1").freeze()
    keys, terms = pair_terms(trials_csv, fitm, f"{fit_trunk} features")
    okeys, oterms = pair_terms(trials_csv, oracle, f"oracle {oracle_trunk} features")
    assert okeys == keys
    with torch.no_grad():
        dist = oracle.combine(torch.from_numpy(oterms)).sum(1).double().numpy()
    res = {"keys": keys, "terms": terms, "oracle": dist, "oracle_terms": oterms,
           "trunk_id": fitm.trunk_id}
    atomic_savez(cache, key=json.dumps(key), keys=np.array(keys), terms=terms, oracle=dist,
                 oracle_terms=oterms, trunk_id=fitm.trunk_id)
    log(f"wrote {cache}: {len(keys)} (reference, distortion) views")
    return res
