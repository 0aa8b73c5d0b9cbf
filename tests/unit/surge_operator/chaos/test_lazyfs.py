"""The lazy page cache: readers see every write, only fsync persists, a crash keeps only
what was synced. Checked against a plain bytearray model of the file."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from surge_operator.chaos.lazyfs import DirtyFile, Flush, PageCache


def persist(backing: bytes, flush: Flush) -> bytes:
    """What apply_flush does to a backing file, on bytes."""
    data = bytearray(backing)
    if flush.truncate_to is not None:
        del data[flush.truncate_to :]
    for offset, chunk in flush.extents:
        if len(data) < offset:
            data.extend(bytes(offset - len(data)))
        data[offset : offset + len(chunk)] = chunk
    if len(data) < flush.size:
        data.extend(bytes(flush.size - len(data)))
    return bytes(data[: flush.size])


def view(file: DirtyFile, backing: bytes) -> bytes:
    return file.read(0, file.size + 10, backing)


def test_a_write_is_read_back_over_the_backing_file_but_not_persisted() -> None:
    cache = PageCache()
    cache.write("/f", 2, b"XY", backing_size=6)
    assert cache.read("/f", 0, 100, b"abcdef") == b"abXYef"
    assert cache.size("/f", 6) == 6
    assert cache.unsynced_bytes == 2
    assert cache.read("/other", 1, 3, b"bcdef") == b"bcd"  # clean files pass through


def test_fsync_returns_the_data_to_persist_and_leaves_the_file_clean() -> None:
    cache = PageCache()
    cache.write("/f", 4, b"tail", backing_size=4)
    flush = cache.fsync("/f")
    assert flush is not None
    assert persist(b"head", flush) == b"headtail"
    assert cache.dirty("/f") is None
    assert cache.fsync("/f") is None  # nothing left to sync


def test_a_crash_keeps_what_was_synced_and_nothing_after() -> None:
    backing = b""
    cache = PageCache()
    cache.write("/f", 0, b"synced", backing_size=len(backing))
    flush = cache.fsync("/f")
    assert flush is not None
    backing = persist(backing, flush)
    cache.write("/f", 6, b"+lost", backing_size=len(backing))
    assert cache.read("/f", 0, 100, backing) == b"synced+lost"
    # The power goes: the cache is gone, a fresh one sees only the backing file.
    assert PageCache().read("/f", 0, 100, backing) == b"synced"


def test_overlapping_writes_merge_and_the_newest_bytes_win() -> None:
    file = DirtyFile(base_size=0)
    file.write(0, b"aaaaaa")
    file.write(4, b"bbbb")
    file.write(2, b"cc")
    file.write(20, b"far")
    assert view(file, b"") == b"aaccbbbb" + bytes(12) + b"far"
    assert file.unsynced_bytes == 8 + 3


def test_a_truncate_hides_the_backing_tail_and_persists_only_on_fsync() -> None:
    file = DirtyFile(base_size=8)
    file.truncate(3)
    file.truncate(6)  # extending again reads zeros, not the old bytes
    assert view(file, b"abcdefgh") == b"abc\0\0\0"
    flush = file.flush()
    assert flush.truncate_to == 3
    assert persist(b"abcdefgh", flush) == b"abc\0\0\0"


def test_rename_moves_unsynced_data_and_unlink_drops_it() -> None:
    cache = PageCache()
    cache.write("/d/tmp", 0, b"new", backing_size=0)
    cache.write("/d/meta", 0, b"old-unsynced", backing_size=0)
    cache.rename("/d/tmp", "/d/meta")
    assert cache.read("/d/meta", 0, 100, b"") == b"new"
    assert cache.dirty("/d/tmp") is None
    cache.write("/dir/a", 0, b"x", backing_size=0)
    cache.rename("/dir", "/moved")
    assert cache.read("/moved/a", 0, 1, b"") == b"x"
    cache.unlink("/moved/a")
    assert cache.dirty("/moved/a") is None


def test_fsync_all_persists_every_file() -> None:
    cache = PageCache()
    cache.write("/a", 0, b"1", backing_size=0)
    cache.write("/b", 0, b"2", backing_size=0)
    assert sorted(path for path, _ in cache.fsync_all()) == ["/a", "/b"]
    assert cache.unsynced_bytes == 0


op = st.one_of(
    st.tuples(st.just("write"), st.integers(0, 64), st.binary(min_size=1, max_size=24)),
    st.tuples(st.just("truncate"), st.integers(0, 80), st.just(b"")),
    st.tuples(st.just("read"), st.integers(0, 80), st.integers(0, 40)),
)


@given(backing=st.binary(max_size=48), ops=st.lists(op, max_size=25))
def test_reads_match_a_plain_file_and_fsync_persists_exactly_it(
    backing: bytes, ops: list[tuple[str, int, object]]
) -> None:
    model = bytearray(backing)
    file = DirtyFile(base_size=len(backing))
    for kind, offset, arg in ops:
        if kind == "write":
            assert isinstance(arg, bytes)
            if len(model) < offset:
                model.extend(bytes(offset - len(model)))
            model[offset : offset + len(arg)] = arg
            file.write(offset, arg)
        elif kind == "truncate":
            model = model[:offset] + bytearray(max(0, offset - len(model)))
            file.truncate(offset)
        else:
            assert isinstance(arg, int)
            assert file.read(offset, arg, backing[offset : offset + arg]) == bytes(
                model[offset : offset + arg]
            )
        assert file.size == len(model)
    assert view(file, backing) == bytes(model)
    assert persist(backing, file.flush()) == bytes(model)
