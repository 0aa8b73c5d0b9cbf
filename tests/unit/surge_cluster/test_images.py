from __future__ import annotations

import hashlib
import io
import json
import tarfile

from surge_cluster.images import FileEntry, ImageSpec, docker_archive


def test_docker_archive_has_manifest_config_and_a_layer_matching_its_diff_id() -> None:
    spec = ImageSpec(
        "surge.local/x:1",
        [FileEntry("/bin/tool", b"\x7fELF", 0o755), FileEntry("/bin/sh", link="tool")],
        entrypoint=["/bin/tool"],
        user="65534",
    )

    with tarfile.open(fileobj=io.BytesIO(docker_archive(spec))) as archive:
        manifest = json.load(archive.extractfile("manifest.json"))  # type: ignore[arg-type]
        (entry,) = manifest
        config = json.load(archive.extractfile(entry["Config"]))  # type: ignore[arg-type]
        layer = archive.extractfile(entry["Layers"][0]).read()  # type: ignore[union-attr]

    assert entry["RepoTags"] == ["surge.local/x:1"]
    assert config["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(layer).hexdigest()]
    assert config["config"]["User"] == "65534"
    with tarfile.open(fileobj=io.BytesIO(layer)) as files:
        members = {m.name: m for m in files}
    assert members["bin"].isdir()
    assert members["bin/tool"].mode == 0o755
    assert members["bin/sh"].issym()
    assert members["bin/sh"].linkname == "tool"


def test_archives_are_reproducible() -> None:
    spec = ImageSpec("surge.local/x:1", [FileEntry("/a", b"1")])

    assert docker_archive(spec) == docker_archive(spec)
