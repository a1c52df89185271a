"""dlrc weights import/status: hash-verified offline import of torchvision's checkpoints."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from dlrc_lib.core.errors import DlrcError
from dlrc_lib.features.deep import networks as dn
from dlrc_lib.features.deep import weights as dw
from dlrc_lib.run import cli


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    monkeypatch.setenv("DLRC_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))

    def trap(*a, **k):
        raise AssertionError("a test tried to download weights")

    monkeypatch.setattr(dn, "_download_imagenet", trap)


def fabricated_state(arch: str, fill: float = 0.01) -> dict[str, torch.Tensor]:
    """A state_dict with every key and shape of torchvision's ``arch``; each tensor is a view of
    one stored value (stride 0), so the checkpoint file is a few hundred kB."""
    state = {}
    for key, shape in dw._reference_shapes(arch).items():
        dtype = torch.int64 if key.endswith("num_batches_tracked") else torch.float32
        value = torch.ones(1, dtype=dtype) if key.endswith("running_var") else torch.full((1,), fill, dtype=dtype)
        state[key] = value.reshape([1] * len(shape)).expand(shape) if shape else value.reshape(())
    return state


def write_checkpoint(folder: Path, arch: str, monkeypatch, fill: float = 0.01) -> Path:
    """Save a fabricated ``arch`` checkpoint under a torchvision-style name carrying its own
    hash prefix, and make that name the one a run expects for ``arch``."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "tmp.pth"
    torch.save(fabricated_state(arch, fill), tmp)
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    path = folder / f"{arch.lower()}-{digest[:8]}.pth"
    tmp.rename(path)
    real = dn.imagenet_file_name

    def name(a: str) -> str:
        return path.name if a == arch else real(a)

    monkeypatch.setattr(dn, "imagenet_file_name", name)
    return path


def test_torchvision_names_and_hash_rule():
    names = dw.expected_file_names()
    assert names == {"ResNet50": "resnet50-0676ba61.pth", "ResNet101": "resnet101-63fe2227.pth",
                     "ResNet152": "resnet152-394f9c45.pth"}
    assert dw.hash_prefix("resnet50-0676ba61.pth") == "0676ba61"
    # the table that spares a cached run the torchvision import is torchvision's own
    import os

    for arch in dn.ARCHS:
        assert dn.imagenet_file_name(arch) == os.path.basename(dn._tv_weights_enum(arch).url)
        assert dn.imagenet_url(arch) == dn._tv_weights_enum(arch).url
    assert dw.other_tag_file_names()["resnet50-11ad3fa6.pth"] == ("ResNet50", "IMAGENET1K_V2")
    with pytest.raises(DlrcError, match="carries no hash"):
        dw.hash_prefix("resnet50.pth")


def test_import_verified_checkpoint_is_what_a_run_reads(tmp_path, monkeypatch, capsys):
    src = write_checkpoint(tmp_path / "downloads", "ResNet50", monkeypatch)
    assert src.stat().st_size < 2_000_000
    before = dw.weights_status("auto", 7)
    assert not before[0].present and before[0].run_uses.startswith("RANDOM initialisation (seed 7)")
    warn = dn.resolve_weights("ResNet50", "auto", 7).warning
    assert warn.endswith(f"put torchvision's {src.name} (https://download.pytorch.org/models/{src.name}) "
                         f"in a folder and run: dlrc weights import <folder>")

    assert cli.main(["weights", "import", str(src.parent)]) == 0
    target = dn.imagenet_checkpoint_path("ResNet50")
    assert target.read_bytes() == src.read_bytes()
    assert target.parent == tmp_path / "torch_home" / "hub" / "checkpoints"
    assert [p.name for p in target.parent.iterdir()] == [src.name]  # no temporary file left
    assert "1 imported" in capsys.readouterr().out

    info = dn.resolve_weights("ResNet50", "auto", 7)
    assert info.source == "imagenet" and info.warning is None and info.path == str(target)
    ext = dn.build_extractor("ResNet50_2D", info, device="cpu")  # the run's loader accepts it
    assert ext.net.conv1.weight.shape == (64, 3, 7, 7)

    rows = {r.arch: r for r in dw.weights_status("auto", 7)}
    assert rows["ResNet50"].present and rows["ResNet50"].verified == "yes"
    assert rows["ResNet50"].run_uses == f"ImageNet IMAGENET1K_V1 from {target}"
    assert not rows["ResNet101"].present
    assert rows["ResNet101"].run_uses.startswith("RANDOM initialisation")
    assert dw.weights_status("imagenet", 7)[1].run_uses.startswith("nothing: the run stops")
    assert dw.weights_status("random", 7)[0].run_uses == "random initialisation (seed 7), as set"

    # importing again: verified, not copied again
    mtime = target.stat().st_mtime_ns
    res = dw.import_weights(src.parent, say=lambda m: None)
    assert [r.action for r in res] == ["already present"] and target.stat().st_mtime_ns == mtime

    assert cli.main(["weights", "status"]) == 0
    out = capsys.readouterr().out
    assert f"{src.name}" in out and "verified" in out and "dlrc weights import <folder>" in out


def test_corrupt_checkpoint_is_refused_and_named(tmp_path, monkeypatch, capsys):
    src = write_checkpoint(tmp_path / "downloads", "ResNet50", monkeypatch)
    data = bytearray(src.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte: the hash in the name no longer matches
    src.write_bytes(bytes(data))
    assert cli.main(["weights", "import", str(src.parent)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"{src}: SHA-256" in err and f"does not start with {src.name.split('-')[1][:8]}" in err
    target = dn.imagenet_checkpoint_path("ResNet50")
    assert not target.exists() and not any(target.parent.iterdir())  # nothing half-written

    # a corrupt file already in the cache is reported by status, and replaced by an import
    target.write_bytes(bytes(data))
    row = dw.weights_status("auto", 0)[0]
    assert row.present and row.verified.startswith("no: SHA-256")
    assert "NOT torchvision's" in row.run_uses
    good = write_checkpoint(tmp_path / "good", "ResNet50", monkeypatch, fill=0.02)
    target = dn.imagenet_checkpoint_path("ResNet50")
    target.write_bytes(b"garbage")
    assert [r.action for r in dw.import_weights(good.parent, say=lambda m: None)] == ["imported"]
    assert target.read_bytes() == good.read_bytes()


def test_right_hash_wrong_content_is_refused(tmp_path, monkeypatch):
    # a ResNet101 state_dict saved under the ResNet50 name (with its own correct hash)
    folder = tmp_path / "downloads"
    folder.mkdir()
    tmp = folder / "x.pth"
    torch.save(fabricated_state("ResNet101"), tmp)
    name = f"resnet50-{hashlib.sha256(tmp.read_bytes()).hexdigest()[:8]}.pth"
    tmp.rename(folder / name)
    real = dn.imagenet_file_name
    monkeypatch.setattr(dn, "imagenet_file_name", lambda a: name if a == "ResNet50" else real(a))
    with pytest.raises(DlrcError, match=rf"{name}: not a ResNet50 state_dict \(\d+ unexpected key"):
        dw.import_weights(folder, say=lambda m: None)
    assert not dn.imagenet_checkpoint_path("ResNet50").exists()

    # a pickle that is not plain tensors is never unpickled
    class Evil:
        def __reduce__(self):
            return (print, ("unpickled",))

    bad = folder / "evil.pth"
    torch.save({"x": Evil()}, bad)
    with pytest.raises(DlrcError, match="evil.pth: not a loadable checkpoint"):
        dw.check_state_dict(bad, "ResNet50")


def test_other_weights_and_empty_folders(tmp_path, capsys):
    folder = tmp_path / "v2"
    folder.mkdir()
    (folder / "resnet50-11ad3fa6.pth").write_bytes(b"x")
    with pytest.raises(DlrcError, match="holds none of torchvision's files .resnet50-0676ba61.pth"):
        dw.import_weights(folder)
    assert "skipped resnet50-11ad3fa6.pth: torchvision's IMAGENET1K_V2 weights" in capsys.readouterr().out
    assert cli.main(["weights", "import", str(tmp_path / "nope")]) == 2
    assert "is not a folder" in capsys.readouterr().err
