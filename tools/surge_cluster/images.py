"""Small images the local cluster needs, built without a registry or container engine.

Each image is one layer written as a docker-archive tar (manifest.json + config + layer),
the format `ctr images import` reads. Built once per content and cached under
${XDG_CACHE_HOME:-~/.cache}/surge/images:

- surge.local/pause:3.10     the sandbox image: k8s's build/pause/linux/pause.c, gcc -static
- surge.local/coredns:<ver>  cluster DNS, the CoreDNS binary built by tools/build-k8s.sh
- surge.local/busybox:e2e    Debian's busybox-static with its applets, plus /www/index.html:
                             the tiny image the e2e tests run (HTTP server, wget, nslookup)
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from surge_cluster.nodeconfig import PAUSE_IMAGE
from surge_cluster.versions import cache_root, load_versions

BUSYBOX_IMAGE = "surge.local/busybox:e2e"
BUSYBOX = Path("/bin/busybox")


class ImageBuildError(RuntimeError):
    """An image could not be built (a missing input names itself in the message)."""


@dataclass(frozen=True)
class FileEntry:
    path: str
    """Absolute path inside the image."""
    data: bytes = b""
    mode: int = 0o644
    link: str | None = None
    """Symlink target (data ignored)."""


@dataclass(frozen=True)
class ImageSpec:
    ref: str
    files: Sequence[FileEntry]
    entrypoint: Sequence[str] = ()
    user: str = ""
    env: Sequence[str] = field(default_factory=lambda: ["PATH=/bin:/usr/bin"])


def _layer(files: Sequence[FileEntry]) -> bytes:
    """A reproducible layer tar: parents first, fixed owner and mtime."""
    buf = io.BytesIO()
    dirs: set[str] = set()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in sorted(files, key=lambda e: e.path):
            parts = entry.path.strip("/").split("/")
            for i in range(1, len(parts)):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    info = tarfile.TarInfo(d)
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(info)
            info = tarfile.TarInfo("/".join(parts))
            info.mode = entry.mode
            if entry.link is not None:
                info.type, info.linkname = tarfile.SYMTYPE, entry.link
                tar.addfile(info)
            else:
                info.size = len(entry.data)
                tar.addfile(info, io.BytesIO(entry.data))
    return buf.getvalue()


def docker_archive(spec: ImageSpec) -> bytes:
    """The whole archive in memory (these images are a few MB to a few tens of MB)."""
    layer = _layer(spec.files)
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Entrypoint": list(spec.entrypoint) or None,
            "User": spec.user,
            "Env": list(spec.env),
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "surge_cluster.images"}],
    }
    config_bytes = json.dumps(config, sort_keys=True).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    layer_name = diff_id.removeprefix("sha256:") + "/layer.tar"
    manifest = [{"Config": config_name, "RepoTags": [spec.ref], "Layers": [layer_name]}]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in (
            (config_name, config_bytes),
            (layer_name, layer),
            ("manifest.json", json.dumps(manifest).encode()),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def images_dir() -> Path:
    return cache_root().parent / "images"


def _cached(spec_key: str, ref: str, build: ImageSpec | None = None) -> Path:
    safe = ref.replace("/", "_").replace(":", "_")
    return images_dir() / f"{safe}-{spec_key[:12]}.tar"


def write_archive(spec: ImageSpec, cache_key: str) -> Path:
    """Write spec's archive to the cache (atomic) unless that exact content is there."""
    target = _cached(cache_key, spec.ref)
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
    with os.fdopen(fd, "wb") as out:
        out.write(docker_archive(spec))
    os.replace(tmp, target)
    return target


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(hashlib.sha256(p).digest())
    return h.hexdigest()


# ----------------------------------------------------------------- the built-in images
def pause_source() -> Path:
    """pause.c from the k8s.io/kubernetes module the control plane is built from."""
    version = load_versions().kubernetes
    gomodcache = os.environ.get("GOMODCACHE", "")
    if not gomodcache and shutil.which("go"):
        gomodcache = subprocess.run(
            ["go", "env", "GOMODCACHE"], capture_output=True, text=True, check=False
        ).stdout.strip()
    gomodcache = gomodcache or str(Path.home() / "go" / "pkg" / "mod")
    path = Path(gomodcache) / f"k8s.io/kubernetes@{version}/build/pause/linux/pause.c"
    if not path.exists():
        raise ImageBuildError(f"{path} missing: run tools/build-k8s.sh (it downloads the module)")
    return path


def pause_image() -> Path:
    source = pause_source().read_bytes()
    key = _digest(source, b"gcc -static -Os v1")
    cached = _cached(key, PAUSE_IMAGE)
    if cached.exists():
        return cached
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "pause.c"
        src.write_bytes(source)
        binary = Path(tmp) / "pause"
        cmd = ["gcc", "-static", "-Os", "-DVERSION=surge", "-o", str(binary), str(src)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise ImageBuildError(f"{' '.join(cmd)}: {proc.stderr.strip()}")
        subprocess.run(["strip", str(binary)], check=False)
        data = binary.read_bytes()
    spec = ImageSpec(PAUSE_IMAGE, [FileEntry("/pause", data, 0o755)], entrypoint=["/pause"])
    return write_archive(spec, key)


def coredns_ref() -> str:
    return f"surge.local/coredns:{load_versions().coredns}"


def coredns_image(binaries: Path) -> Path:
    binary = binaries / "coredns"
    if not binary.exists():
        raise ImageBuildError(f"{binary} missing: run tools/build-k8s.sh")
    data = binary.read_bytes()
    key = _digest(data, b"coredns v1")
    spec = ImageSpec(
        coredns_ref(), [FileEntry("/coredns", data, 0o755)], entrypoint=["/coredns"], user="65534"
    )
    return write_archive(spec, key)


INDEX_HTML = b"surge e2e\n"


def busybox_image() -> Path:
    if not BUSYBOX.exists():
        raise ImageBuildError(f"{BUSYBOX} missing: run tools/install-node-deps.sh")
    data = BUSYBOX.read_bytes()
    key = _digest(data, INDEX_HTML, b"busybox v1")
    cached = _cached(key, BUSYBOX_IMAGE)
    if cached.exists():
        return cached
    listing = subprocess.run(
        [str(BUSYBOX), "--list"], capture_output=True, text=True, check=True
    ).stdout.split()
    files = [FileEntry("/bin/busybox", data, 0o755)]
    files += [FileEntry(f"/bin/{a}", link="busybox") for a in listing if a != "busybox"]
    files += [FileEntry("/www/index.html", INDEX_HTML), FileEntry("/tmp/.keep")]
    files += [FileEntry("/etc/passwd", b"root:x:0:0::/:/bin/sh\nnobody:x:65534:65534::/:/bin/sh\n")]
    return write_archive(ImageSpec(BUSYBOX_IMAGE, files), key)


def builtin_images(binaries: Path) -> list[Path]:
    """Every image a fresh node needs: the sandbox, cluster DNS and the test image."""
    if shutil.which("gcc") is None:
        raise ImageBuildError("gcc missing: run tools/install-node-deps.sh")
    return [pause_image(), coredns_image(binaries), busybox_image()]
