"""Frozen ResNet feature extractors: torchvision ResNet50/101/152, in 2D and inflated to 3D.

A model name is ``<arch>_<dim>``, e.g. ``ResNet152_2D`` or ``ResNet50_3D``. Every extractor
returns the 2048-wide global-average-pooling output of the network (the input of its
ImageNet classifier), i.e. one feature vector per image or volume.

**Weights.** ``weights`` is one of

- ``"imagenet"``: torchvision's ImageNet weights (``IMAGENET1K_V1``, the original
  pre-trained ResNets), read from torchvision's checkpoint cache
  (``$TORCH_HOME/hub/checkpoints``) or downloaded there when missing;
- ``"auto"`` (default): the ImageNet weights when they can be had (cache, or a download
  unless ``DLRC_OFFLINE=1``), otherwise a seeded random initialisation, which is reported
  as a warning (features of a random network are not those of the paper);
- ``"random"``: the seeded random initialisation (torchvision's own initialisers, seeded);
- a path: a ``state_dict`` file (``torch.save``), or a folder holding torchvision's
  checkpoint files (``resnet50-0676ba61.pth`` ...) or ``resnet50.pth`` etc.

Nothing is ever downloaded when ``DLRC_OFFLINE`` is set (the test suite sets it), and the
cache is checked before anything that could download is called. ``dlrc weights import DIR``
copies torchvision's files into the cache on machines without network access
(:mod:`dlrc_lib.features.deep.weights`).

**Inflation (I3D).** The 3D extractor is the 2D network with every ``k x k`` convolution
turned into a ``3 x k x k`` convolution whose depth slices are the 2D kernel divided by 3
(1 x 1 convolutions stay 1 x 1 x 1), batch norms copied, max pooling ``1 x 3 x 3``, stride 1
along depth everywhere and global average pooling over depth, height and width. Along
depth the input is padded by *replicating* the edge slices instead of zeros: a volume that
is constant along depth then stays constant along depth through every layer, so each
depth of every activation equals the 2D network's activation of that image, and so do the
pooled features. (With zero padding the border error creeps inwards by one slice per
``3 x k x k`` layer, 17 layers in ResNet50, which on an 8-16-slice MRI crop would reach
every depth.) Keeping depth stride 1 preserves the few slices an MRI tumour crop has.
"""
from __future__ import annotations

import copy
import os
import socket
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn

from dlrc_lib.core.config import DL_ARCHS, DL_MODELS
from dlrc_lib.core.errors import DlrcError
from dlrc_lib.features.store import file_digest

ARCHS = DL_ARCHS
DIMS = ("2D", "3D")
MODEL_NAMES = DL_MODELS  # the paper's order 2a-2f
N_FEATURES = 2048
DEPTH_KERNEL = 3  # depth of inflated k x k kernels (k > 1)

_TV = {
    "ResNet50": ("resnet50", "ResNet50_Weights"),
    "ResNet101": ("resnet101", "ResNet101_Weights"),
    "ResNet152": ("resnet152", "ResNet152_Weights"),
}
WEIGHTS_TAG = "IMAGENET1K_V1"


def parse_model_name(name: str) -> tuple[str, str]:
    """``"ResNet152_2D"`` -> ``("ResNet152", "2D")``; :class:`DlrcError` if unknown."""
    arch, _, dim = name.partition("_")
    if arch not in ARCHS or dim not in DIMS:
        raise DlrcError(
            f"deep.models: unknown model {name!r}; expected one of {', '.join(MODEL_NAMES)}"
        )
    return arch, dim


# ------------------------------------------------------------------------ weights
@dataclass(frozen=True)
class WeightsInfo:
    """Where an extractor's weights came from.

    ``identity`` is what the feature cache is keyed on (the checkpoint's bytes digest, or
    the random seed and torch version); ``warning`` is set when the weights are not the
    requested pre-trained ones.
    """

    arch: str
    source: str  # "imagenet" | "file" | "random"
    identity: str
    path: str | None = None
    warning: str | None = None


def _tv_weights_enum(arch: str):
    import torchvision.models as tvm

    return getattr(getattr(tvm, _TV[arch][1]), WEIGHTS_TAG)


# torchvision's file names of the IMAGENET1K_V1 checkpoints (the hash prefix in each name is
# checked on download). Kept here so that resolving the weights of a run whose features are
# all cached does not import torchvision (~5 s); tests/test_weights.py checks them against
# torchvision's own table.
IMAGENET_FILES = {"ResNet50": "resnet50-0676ba61.pth", "ResNet101": "resnet101-63fe2227.pth",
                  "ResNet152": "resnet152-394f9c45.pth"}


def imagenet_file_name(arch: str) -> str:
    """torchvision's file name of the ImageNet checkpoint of ``arch`` (``resnet50-0676ba61.pth``)."""
    return IMAGENET_FILES[arch]


def imagenet_url(arch: str) -> str:
    """Where torchvision downloads the ImageNet checkpoint of ``arch`` from."""
    return f"https://download.pytorch.org/models/{imagenet_file_name(arch)}"


def imagenet_checkpoint_path(arch: str) -> Path:
    """Where torchvision keeps (or would keep) the ImageNet checkpoint of ``arch``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / imagenet_file_name(arch)


def offline() -> bool:
    """True when downloads are forbidden (environment variable ``DLRC_OFFLINE`` set)."""
    return os.environ.get("DLRC_OFFLINE", "").strip().lower() not in ("", "0", "false", "no")


def _download_imagenet(arch: str, timeout_s: float = 20.0) -> Path:
    """Fetch torchvision's checkpoint into its cache (explicit network access)."""
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout_s)
    try:
        # what torchvision's Weights.get_state_dict does, from the same URL (see IMAGENET_FILES)
        torch.hub.load_state_dict_from_url(imagenet_url(arch), progress=False, check_hash=True)
    finally:
        socket.setdefaulttimeout(old)
    return imagenet_checkpoint_path(arch)


def _sha256_file(path: Path) -> str:
    return file_digest(path)


def resolve_weights(arch: str, spec: str, seed: int) -> WeightsInfo:
    """Decide which weights ``arch`` gets under the ``deep.weights`` setting ``spec``.

    Never downloads when :func:`offline`; for ``auto`` an unavailable checkpoint falls back
    to the seeded random initialisation with a warning.
    """
    if arch not in ARCHS:
        raise DlrcError(f"deep.models: unknown architecture {arch!r}")
    random_info = WeightsInfo(arch, "random", f"random:seed={seed}:torch={torch.__version__.split('+')[0]}")
    if spec == "random":
        return random_info
    if spec in ("imagenet", "auto"):
        ckpt = imagenet_checkpoint_path(arch)
        if not ckpt.is_file() and not offline():
            try:
                _download_imagenet(arch)
            except Exception as exc:  # no network, proxy, checksum...
                if spec == "imagenet":
                    raise DlrcError(
                        f"deep.weights: imagenet weights of {arch} not in {ckpt} and the download "
                        f"failed ({exc.__class__.__name__}: {exc}); place the file there or use a path"
                    ) from None
        if ckpt.is_file():
            return WeightsInfo(arch, "imagenet", f"imagenet:{WEIGHTS_TAG}:{_sha256_file(ckpt)}", str(ckpt))
        if spec == "imagenet":
            raise DlrcError(
                f"deep.weights: imagenet weights of {arch} not found at {ckpt} and downloads are "
                f"disabled (DLRC_OFFLINE); place torchvision's file there or give a path"
            )
        msg = (
            f"RANDOM WEIGHTS: ImageNet weights of {arch} are not available (no {ckpt}"
            f"{' and downloads are disabled' if offline() else ' and the download failed'}); "
            f"{arch} features come from a seeded random initialisation (seed {seed}), "
            f"not from the pre-trained network the paper used; to fix it, put torchvision's "
            f"{ckpt.name} (https://download.pytorch.org/models/{ckpt.name}) in a folder and run: "
            f"dlrc weights import <folder>"
        )
        return WeightsInfo(arch, "random", random_info.identity, warning=msg)
    path = Path(spec)
    if path.is_dir():
        tv_name = imagenet_file_name(arch)
        for cand in (path / tv_name, path / f"{arch.lower()}.pth", path / f"{arch}.pth"):
            if cand.is_file():
                path = cand
                break
        else:
            raise DlrcError(
                f"deep.weights: folder {spec} holds neither {tv_name} nor {arch.lower()}.pth for {arch}"
            )
    elif not path.is_file():
        raise DlrcError(f"deep.weights: {spec!r} is neither auto|imagenet|random nor an existing file or folder")
    return WeightsInfo(arch, "file", f"file:{_sha256_file(path)}", str(path))


def build_resnet2d(arch: str, weights: WeightsInfo, seed: int) -> nn.Module:
    """The torchvision ResNet with ``weights`` loaded, classifier removed, frozen, eval mode."""
    import torchvision.models as tvm

    ctor = getattr(tvm, _TV[arch][0])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = ctor(weights=None)
    if weights.source != "random":
        try:
            state = torch.load(weights.path, map_location="cpu", weights_only=True)
            if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
                state = state["state_dict"]
            net.load_state_dict(state)
        except Exception as exc:
            raise DlrcError(
                f"deep.weights: file {weights.path}: not a {arch} state_dict "
                f"({exc.__class__.__name__}: {str(exc).splitlines()[0][:200]})"
            ) from None
    net.fc = nn.Identity()
    net.eval()
    net.requires_grad_(False)
    return net


def fuse_batchnorm(net: nn.Module) -> nn.Module:
    """Fold every eval-mode batch norm into the convolution before it (same outputs up to
    float rounding, ~20 % less inference time on a CPU). Works on torchvision ResNets:
    ``conv1/bn1`` at the stem and in each block, ``convN/bnN`` and ``downsample[0]/[1]``."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    def fold(parent: nn.Module, conv: str, bn: str) -> None:
        c, b = getattr(parent, conv), getattr(parent, bn)
        if isinstance(c, nn.Conv2d) and isinstance(b, nn.BatchNorm2d):
            setattr(parent, conv, fuse_conv_bn_eval(c, b))
            setattr(parent, bn, nn.Identity())

    net.eval()
    for mod in list(net.modules()):
        for i in (1, 2, 3):
            if hasattr(mod, f"conv{i}") and hasattr(mod, f"bn{i}"):
                fold(mod, f"conv{i}", f"bn{i}")
        ds = getattr(mod, "downsample", None)
        if isinstance(ds, nn.Sequential) and len(ds) == 2:
            fold(ds, "0", "1")
    net.requires_grad_(False)
    return net


# ---------------------------------------------------------------------- inflation
class DepthReplicatePad(nn.Module):
    """Pad the depth axis of an ``N, C, D, H, W`` tensor by repeating its edge slices."""

    def __init__(self, pad: int):
        super().__init__()
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad == 0:
            return x
        first = x[:, :, :1].expand(-1, -1, self.pad, -1, -1)
        last = x[:, :, -1:].expand(-1, -1, self.pad, -1, -1)
        return torch.cat([first, x, last], dim=2)


class InflatedConv(nn.Sequential):
    """Depth replicate-padding followed by the inflated ``Conv3d`` (zero padding in-plane)."""


def inflate_conv(conv: nn.Conv2d, depth: int = DEPTH_KERNEL) -> nn.Module:
    """``k x k`` Conv2d -> ``depth x k x k`` Conv3d (weights repeated along depth / depth)."""
    kh, kw = conv.kernel_size
    kd = 1 if (kh, kw) == (1, 1) else depth
    c3 = nn.Conv3d(
        conv.in_channels, conv.out_channels, (kd, kh, kw),
        stride=(1, *conv.stride), padding=(0, *conv.padding), dilation=(1, *conv.dilation),
        groups=conv.groups, bias=conv.bias is not None,
    )
    with torch.no_grad():
        c3.weight.copy_(conv.weight.unsqueeze(2).repeat(1, 1, kd, 1, 1) / kd)
        if conv.bias is not None:
            c3.bias.copy_(conv.bias)
    if kd == 1:
        return c3
    return InflatedConv(DepthReplicatePad(kd // 2), c3)


def inflate_bn(bn: nn.BatchNorm2d) -> nn.BatchNorm3d:
    b3 = nn.BatchNorm3d(bn.num_features, eps=bn.eps, momentum=bn.momentum, affine=bn.affine,
                        track_running_stats=bn.track_running_stats)
    b3.load_state_dict(bn.state_dict())
    return b3


def inflate_pool(pool: nn.MaxPool2d) -> nn.MaxPool3d:
    def pair(v):
        return (v, v) if isinstance(v, int) else tuple(v)

    return nn.MaxPool3d((1, *pair(pool.kernel_size)), (1, *pair(pool.stride)), (0, *pair(pool.padding)),
                        ceil_mode=pool.ceil_mode)


class GlobalAvgPool3d(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3, 4), keepdim=True)


def inflate(net2d: nn.Module, depth: int = DEPTH_KERNEL) -> nn.Module:
    """A 3D copy of a 2D network (module types replaced recursively, weights inflated)."""
    net = copy.deepcopy(net2d)

    def swap(parent: nn.Module) -> None:
        for name, child in parent.named_children():
            if isinstance(child, nn.Conv2d):
                setattr(parent, name, inflate_conv(child, depth))
            elif isinstance(child, nn.BatchNorm2d):
                setattr(parent, name, inflate_bn(child))
            elif isinstance(child, nn.MaxPool2d):
                setattr(parent, name, inflate_pool(child))
            elif isinstance(child, nn.AdaptiveAvgPool2d):
                setattr(parent, name, GlobalAvgPool3d())
            else:
                swap(child)

    swap(net)
    net.eval()
    net.requires_grad_(False)
    return net


# ---------------------------------------------------------------------- extractor
@dataclass
class Extractor:
    """A ready network: ``features(batch) -> (N, 2048)`` float32 on the CPU."""

    name: str
    arch: str
    dim: str
    net: nn.Module
    weights: WeightsInfo
    device: torch.device

    @property
    def memory_format(self) -> torch.memory_format:
        if self.device.type != "cpu":
            return torch.contiguous_format
        return torch.channels_last if self.dim == "2D" else torch.channels_last_3d

    def prepare(self, batch: torch.Tensor) -> torch.Tensor:
        """Move a ``(N, 3, H, W)`` / ``(N, 3, D, H, W)`` batch to the device and layout."""
        return batch.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The bare forward pass on a prepared batch."""
        with torch.inference_mode():
            return self.net(x)

    def features(self, batch: torch.Tensor) -> torch.Tensor:
        out = self.forward(self.prepare(batch))
        return out.reshape(out.shape[0], -1).float().cpu()


def select_device(device: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise DlrcError(f"deep.device: {device!r} requested but no CUDA device is available")
    try:
        return torch.device(device)
    except RuntimeError:
        raise DlrcError(f"deep.device: {device!r} is not a device (auto | cpu | cuda)") from None


def build_extractor(name: str, weights: "WeightsInfo | str" = "auto", seed: int = 0, device: str = "auto",
                    warn: Callable[[str], None] | None = None) -> Extractor:
    """Build the frozen extractor for one model name (see the module docstring).

    ``weights`` is a ``deep.weights`` setting or an already resolved :class:`WeightsInfo`.
    """
    arch, dim = parse_model_name(name)
    info = weights if isinstance(weights, WeightsInfo) else resolve_weights(arch, weights, seed)
    if info.warning and not isinstance(weights, WeightsInfo):
        (warn or (lambda m: warnings.warn(m, stacklevel=3)))(info.warning)
    net = fuse_batchnorm(build_resnet2d(arch, info, seed))
    if dim == "3D":
        net = inflate(net)
    dev = select_device(device)
    ext = Extractor(name, arch, dim, net, info, dev)
    net.to(dev, memory_format=ext.memory_format)
    return ext
