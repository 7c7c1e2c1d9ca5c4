"""The lab's Secret-volume writer keeps the kubelet's layout, so istiod sees updates as in a pod."""

from __future__ import annotations

import os

from lab.nodes import volume


def test_files_are_links_through_one_data_link(tmp_path):
    assert volume.write(tmp_path, {"ca-cert.pem": b"one", "ca-key.pem": b"key"})
    data = tmp_path / "..data"
    assert data.is_symlink() and os.readlink(data).startswith("..20")
    for key, value in (("ca-cert.pem", b"one"), ("ca-key.pem", b"key")):
        assert os.readlink(tmp_path / key) == f"..data/{key}"
        assert (tmp_path / key).read_bytes() == value
    assert volume.read(tmp_path) == {"ca-cert.pem": b"one", "ca-key.pem": b"key"}


def test_an_update_swaps_the_whole_payload_and_drops_the_old_one(tmp_path):
    volume.write(tmp_path, {"ca-cert.pem": b"one", "old.pem": b"gone soon"})
    first = os.readlink(tmp_path / "..data")
    assert volume.write(tmp_path, {"ca-cert.pem": b"two", "tls.crt": b"new"})
    second = os.readlink(tmp_path / "..data")
    assert second != first and not (tmp_path / first).exists()
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("..")) == ["ca-cert.pem", "tls.crt"]
    assert (tmp_path / "ca-cert.pem").read_bytes() == b"two"


def test_an_unchanged_payload_is_not_rewritten(tmp_path):
    volume.write(tmp_path, {"a": b"1"})
    before = os.readlink(tmp_path / "..data")
    assert not volume.write(tmp_path, {"a": b"1"})
    assert os.readlink(tmp_path / "..data") == before


def test_an_empty_payload_is_an_empty_volume(tmp_path):
    volume.write(tmp_path, {"a": b"1"})
    assert volume.write(tmp_path, {})
    assert volume.read(tmp_path) == {} and not (tmp_path / "a").exists()
