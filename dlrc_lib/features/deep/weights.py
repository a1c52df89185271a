"""ImageNet weights on machines without network access: ``dlrc weights import|status``.

A run reads torchvision's ImageNet checkpoints (``IMAGENET1K_V1``) from torchvision's cache,
``$TORCH_HOME/hub/checkpoints/`` (:func:`dlrc_lib.features.deep.networks.imagenet_checkpoint_path`).
On a machine that cannot download them, copy torchvision's files there with

    dlrc weights import DIR

which looks in ``DIR`` for each architecture's file under torchvision's own name
(``resnet50-0676ba61.pth``, ``resnet101-63fe2227.pth``, ``resnet152-394f9c45.pth``) and,
for every file it finds,

* checks that the SHA-256 of its bytes starts with the hash in its name (the check
  ``torch.hub`` makes after a download), while copying it into a temporary file next to
  its destination;
* loads it with ``torch.load(weights_only=True)`` (plain tensors only, never arbitrary
  pickled objects) and checks that its keys and tensor shapes are those of the
  torchvision network;
* only then moves it into place (an interrupted import leaves no half-written file).

A file that fails either check is refused with its path named; the files that passed are
still imported. ``dlrc weights status`` lists, per architecture, the file a run looks for,
whether it is present and verified, and which weights a run with the given ``deep.weights``
setting would use.
"""
from __future__ import annotations

import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from dlrc_lib.core.errors import DlrcError
from dlrc_lib.features.deep import networks as dn

# torch.hub's rule: the hash prefix is what follows the last "-" of the file name, up to the
# first "." after it (torch.hub.HASH_REGEX = r"-([a-f0-9]*)\.").
HASH_REGEX = re.compile(r"-([a-f0-9]*)\.")
_BLOCK = 1 << 20


def expected_file_names() -> dict[str, str]:
    """Architecture -> torchvision's checkpoint file name of the weights a run uses."""
    return {arch: dn.imagenet_file_name(arch) for arch in dn.ARCHS}


def other_tag_file_names() -> dict[str, tuple[str, str]]:
    """File name -> (architecture, tag) for torchvision's other ImageNet weights of the ResNets
    (recognised so that an import can say why it skips them)."""
    import torchvision.models as tvm

    out = {}
    for arch in dn.ARCHS:
        for member in getattr(tvm, dn._TV[arch][1]):
            if member.name != dn.WEIGHTS_TAG:
                out[os.path.basename(member.url)] = (arch, member.name)
    return out


def hash_prefix(file_name: str) -> str:
    """The hash prefix in a torchvision checkpoint name (``resnet50-0676ba61.pth`` -> ``0676ba61``)."""
    m = HASH_REGEX.search(file_name)
    if not m or not m.group(1):
        raise DlrcError(f"file name {file_name!r} carries no hash (expected NAME-<hex>.pth)")
    return m.group(1)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_BLOCK), b""):
            h.update(block)
    return h.hexdigest()


def _reference_shapes(arch: str) -> dict[str, tuple[int, ...]]:
    """Keys and tensor shapes of torchvision's ``arch`` (built on the meta device: no memory)."""
    import torch
    import torchvision.models as tvm

    with torch.device("meta"):
        net = getattr(tvm, dn._TV[arch][0])(weights=None)
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


def check_state_dict(path: Path, arch: str, label: str | None = None) -> None:
    """Load ``path`` with ``weights_only=True`` and check it is a full ``arch`` state_dict
    (same keys, same shapes; BatchNorm's ``num_batches_tracked`` may be absent, as in
    torchvision's older files). :class:`DlrcError` naming the file otherwise."""
    import torch

    label = label or str(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        first = (str(exc).splitlines() or [""])[0][:200]
        raise DlrcError(f"{label}: not a loadable checkpoint ({exc.__class__.__name__}: {first})") from None
    if not isinstance(state, dict):
        raise DlrcError(f"{label}: holds a {type(state).__name__}, not a state_dict")
    ref = _reference_shapes(arch)
    optional = {k for k in ref if k.endswith("num_batches_tracked")}
    missing = sorted(set(ref) - set(state) - optional)
    unexpected = sorted(set(state) - set(ref))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s), e.g. {missing[0]}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s), e.g. {unexpected[0]}")
        raise DlrcError(f"{label}: not a {arch} state_dict ({'; '.join(parts)})")
    for key, shape in ref.items():
        if key in state:
            value = state[key]
            if not torch.is_tensor(value) or tuple(value.shape) != shape:
                got = tuple(value.shape) if torch.is_tensor(value) else type(value).__name__
                raise DlrcError(f"{label}: {key} has shape {got}, {arch} needs {shape}")


@dataclass(frozen=True)
class ImportResult:
    arch: str
    source: str
    target: str
    sha256: str
    action: str  # "imported" | "already present"


def _copy_verified(src: Path, target: Path, prefix: str, arch: str) -> tuple[str, bool]:
    """Copy ``src`` to ``target`` through a temporary file, hashing on the way; the file only
    replaces ``target`` when its hash matches ``prefix`` and its content is an ``arch``
    state_dict. Returns (sha256, replaced)."""
    if target.is_file() and target.stat().st_size == src.stat().st_size:
        existing = sha256_of(target)
        if existing == sha256_of(src) and existing.startswith(prefix):
            return existing, False
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        h = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, open(src, "rb") as fh:
            for block in iter(lambda: fh.read(_BLOCK), b""):
                h.update(block)
                out.write(block)
        digest = h.hexdigest()
        if not digest.startswith(prefix):
            raise DlrcError(
                f"{src}: SHA-256 {digest[:16]}... does not start with {prefix}, the hash in "
                f"its name: the file is corrupt or not torchvision's; refused"
            )
        check_state_dict(Path(tmp), arch, label=str(src))
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return digest, True


def import_weights(src_dir: str | Path, archs: Iterable[str] = dn.ARCHS,
                   say=print) -> list[ImportResult]:
    """Copy torchvision's checkpoint files found in ``src_dir`` into torchvision's cache.

    Every file found is verified (hash prefix, keys and shapes) before it is moved into
    place; the files that pass are imported even when another one is refused, and a
    :class:`DlrcError` then names each refused file. A folder without any expected file is
    an error that lists the names looked for.
    """
    src_dir = Path(src_dir)
    if not src_dir.is_dir():
        raise DlrcError(f"{src_dir} is not a folder")
    names = expected_file_names()
    others = other_tag_file_names()
    results: list[ImportResult] = []
    refused: list[str] = []
    found_any = False
    for arch in archs:
        name = names[arch]
        src = src_dir / name
        target = dn.imagenet_checkpoint_path(arch)
        if not src.is_file():
            skipped = False
            for other, (o_arch, tag) in others.items():
                if o_arch == arch and (src_dir / other).is_file():
                    skipped = True
                    say(f"  {arch}: skipped {other}: torchvision's {tag} weights; a run uses "
                        f"{dn.WEIGHTS_TAG} ({name})")
            if not skipped:
                say(f"  {arch}: no {name} in {src_dir}")
            continue
        found_any = True
        try:
            digest, copied = _copy_verified(src, target, hash_prefix(name), arch)
        except DlrcError as exc:
            refused.append(str(exc))
            say(f"  {arch}: REFUSED {src}")
            continue
        action = "imported" if copied else "already present"
        results.append(ImportResult(arch, str(src), str(target), digest, action))
        say(f"  {arch}: {action} {target} (sha256 {digest[:12]}..., hash in the name verified)")
    if not found_any and not refused:
        wanted = ", ".join(names[a] for a in archs)
        raise DlrcError(f"{src_dir} holds none of torchvision's files ({wanted})")
    if refused:
        raise DlrcError(" | ".join(refused))
    return results


@dataclass(frozen=True)
class StatusRow:
    arch: str
    file: str
    path: str
    present: bool
    verified: str  # "yes" | "no: ..." | ""
    run_uses: str


def _file_state(path: Path, arch: str) -> tuple[bool, str]:
    if not path.is_file():
        return False, ""
    digest = sha256_of(path)
    prefix = hash_prefix(path.name)
    if not digest.startswith(prefix):
        return True, f"no: SHA-256 {digest[:12]}... does not start with {prefix}"
    return True, "yes"


def weights_status(spec: str = "auto", seed: int = 0, archs: Iterable[str] = dn.ARCHS) -> list[StatusRow]:
    """Per architecture: torchvision's file, where a run looks for it, whether it is there and
    verified, and what a run with ``deep.weights: spec`` would use. Never downloads."""
    names = expected_file_names()
    rows = []
    for arch in archs:
        path = dn.imagenet_checkpoint_path(arch)
        present, verified = _file_state(path, arch)
        if spec == "random":
            uses = f"random initialisation (seed {seed}), as set"
        elif spec in ("auto", "imagenet"):
            if present and verified == "yes":
                uses = f"ImageNet {dn.WEIGHTS_TAG} from {path}"
            elif present:
                uses = f"the file at {path}, which is NOT torchvision's ({verified.removeprefix('no: ')})"
            elif not dn.offline():
                uses = (f"a download of {path.name} into {path.parent}"
                        + (", random initialisation if it fails" if spec == "auto" else ", an error if it fails"))
            elif spec == "auto":
                uses = f"RANDOM initialisation (seed {seed}): file missing and downloads disabled (DLRC_OFFLINE)"
            else:
                uses = "nothing: the run stops (file missing and downloads disabled)"
        else:
            try:
                info = dn.resolve_weights(arch, spec, seed)  # a path: never downloads
                uses = f"the state_dict file {info.path}"
            except DlrcError as exc:
                uses = f"nothing: {exc}"
        rows.append(StatusRow(arch, names[arch], str(path), present, verified, uses))
    return rows


def format_status(rows: list[StatusRow], spec: str) -> str:
    import torch

    lines = [
        f"torchvision's cache: {Path(torch.hub.get_dir()) / 'checkpoints'} "
        f"(TORCH_HOME={os.environ.get('TORCH_HOME', '(unset)')}); "
        f"downloads {'disabled (DLRC_OFFLINE)' if dn.offline() else 'allowed'}; deep.weights: {spec}",
    ]
    for r in rows:
        state = "missing" if not r.present else ("verified" if r.verified == "yes" else f"present, {r.verified}")
        lines.append(f"  {r.arch:<10} {r.file:<24} {state}")
        lines.append(f"  {'':<10} a run uses: {r.run_uses}")
    if any(not r.present for r in rows) and spec in ("auto", "imagenet"):
        lines.append("Missing files: get them from https://download.pytorch.org/models/<file> on a machine "
                     "with network access, put them in a folder, then run: dlrc weights import <folder>")
    return "\n".join(lines)


# ------------------------------------------------------------------------------ CLI
