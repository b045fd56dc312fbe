"""The emotion-set builder and loader under malformed input: every case gets a clear error that
names the file (and says what to do) or a report in the manifest, never a bare library
exception and never a silent loss."""

from __future__ import annotations

import builtins
import io
import json
import os
import shutil
import struct
import tarfile
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from test_data import (
    build,
    ck_members,
    encode,
    face,
    fer_csv,
    fer_members,
    fer_row,
    pixels,
    write_zip,
)

from bplf.data import DatasetError, build_emotion_set, load_emotion_set

N_FER = 7 * 3  # fer_members(n_per=1)


def fer_raw(tmp_path: Path, extra: dict[str, bytes] | None = None,
            compression: int = zipfile.ZIP_STORED) -> Path:
    """``tmp_path/raw/fer2013.zip``: FER-2013's folder layout (21 faces) plus ``extra``."""
    raw = tmp_path / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    write_zip(raw / "fer2013.zip", {**fer_members(n_per=1), **(extra or {})}, compression)
    return raw


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    """FER-2013 (21 faces) and CK+48 (4 subjects) archives."""
    raw = fer_raw(tmp_path)
    write_zip(raw / "ckplus48.zip", ck_members(subjects=4))
    return raw


def skipped(manifest: dict, source: str) -> list[dict]:
    return manifest["skipped"].get(source, [])


def folder_dataset(root: Path, n: int = 6) -> Path:
    """``root/mine/<emotion>/<i>.png``: a small generic image folder."""
    for i in range(n):
        emotion = ("happy", "sad", "neutral")[i % 3]
        (root / "mine" / emotion).mkdir(parents=True, exist_ok=True)
        (root / "mine" / emotion / f"{i}.png").write_bytes(encode(face(100 + i)))
    return root / "mine"


# -- errors that named no file -------------------------------------------------------------------

def test_corrupt_zip_member_is_skipped_naming_archive_and_member(tmp_path):
    raw = fer_raw(tmp_path, {"train/sad/Training_777.png": encode(face(777), "BMP")},
                  compression=zipfile.ZIP_DEFLATED)
    path = raw / "fer2013.zip"
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("train/sad/Training_777.png")
    data = bytearray(path.read_bytes())
    name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26:
                                                    info.header_offset + 30])
    start = info.header_offset + 30 + name_len + extra_len
    for i in range(start + 2, start + info.compress_size - 2):
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))
    manifest, es = build(raw, tmp_path)
    assert len(es) == N_FER
    (entry,) = skipped(manifest, "fer2013")
    assert entry["file"].endswith("fer2013.zip:train/sad/Training_777.png")
    assert "damaged inside the archive" in entry["reason"]


def test_encrypted_zip_member_is_skipped(tmp_path):
    raw = fer_raw(tmp_path, {"train/sad/Training_777.png": encode(face(777))})
    path = raw / "fer2013.zip"
    data = bytearray(path.read_bytes())
    name = b"train/sad/Training_777.png"
    at = data.index(name, data.index(b"PK\x01\x02")) - 46  # this member's central record
    assert data[at:at + 4] == b"PK\x01\x02"
    data[at + 8] |= 0x01  # the "encrypted" flag
    path.write_bytes(bytes(data))
    manifest, es = build(raw, tmp_path)
    assert len(es) == N_FER
    (entry,) = skipped(manifest, "fer2013")
    assert "Training_777.png" in entry["reason"] and "password" in entry["reason"]


def test_fer_csv_numbers_run_together_are_a_skipped_row(tmp_path):
    rows = [fer_row(i % 7, face(i), "Training") for i in range(5)]
    rows.append("3," + "7" * 40 + " 0" * 2303 + ",Training")  # digits with no spaces
    rows.append(fer_row(4, face(9), "PublicTest"))
    raw = fer_csv(tmp_path / "raw", rows)
    manifest, es = build(raw, tmp_path)
    assert len(es) == 6
    (entry,) = skipped(manifest, "fer2013")
    assert "fer2013.csv line 7" in entry["reason"] and "0..255" in entry["reason"]


def test_zip_member_name_flagged_utf8_but_not_utf8(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    path = write_zip(raw / "mine.zip", {"mine/happy/cafX.png": encode(face(1))})
    data = bytearray(path.read_bytes().replace(b"cafX.png", b"caf\xe9.png"))
    for signature, flags_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        data[data.index(signature) + flags_at + 1] |= 0x08  # flag bit 11: "names are UTF-8"
    path.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match=r"mine\.zip: a member name .* not valid UTF-8"):
        build_emotion_set(raw, tmp_path / "out")


def test_tar_member_name_not_utf8_is_read(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    with tarfile.open(raw / "mine.tar", "w", format=tarfile.GNU_FORMAT, encoding="utf-8",
                      errors="surrogateescape") as t:
        for i, name in enumerate(["mine/happy/caf\udce9.png", "mine/sad/plain.png"]):
            data = encode(face(i))
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    manifest, es = build(raw, tmp_path)
    assert len(es) == 2 and manifest["skipped"] == {}
    json.dumps(manifest, ensure_ascii=False).encode()  # the manifest is valid text


def test_folder_file_name_not_utf8_is_read(tmp_path):
    raw = tmp_path / "raw"
    folder_dataset(raw)
    odd = os.fsencode(raw / "mine" / "happy") + b"/caf\xe9.png"
    with open(odd, "wb") as f:
        f.write(encode(face(55)))
    manifest, es = build(raw, tmp_path)
    assert len(es) == 7 and manifest["skipped"] == {}


def test_corrupt_manifest_when_loading(raw, tmp_path):
    out = tmp_path / "processed"
    build_emotion_set(raw, out)
    (out / "manifest.json").write_text('{"fingerprint": "abc", "total": ')
    with pytest.raises(DatasetError, match=r"manifest\.json: corrupt .*force=True"):
        load_emotion_set(raw, out, build=False)
    with pytest.warns(UserWarning, match=r"manifest\.json: corrupt .* rebuilding"):
        es = load_emotion_set(raw, out)
    assert len(es) == es.manifest["total"] > 0


def test_manifest_that_is_not_an_object(raw, tmp_path):
    out = tmp_path / "processed"
    build_emotion_set(raw, out)
    (out / "manifest.json").write_text("[1, 2, 3]")
    with pytest.raises(DatasetError, match=r"manifest\.json: not an emotion-set manifest"):
        load_emotion_set(raw, out, build=False)
    with pytest.warns(UserWarning, match="rebuilding"):
        assert len(load_emotion_set(raw, out)) > 0


def test_truncated_arrays_when_loading(raw, tmp_path):
    out = tmp_path / "processed"
    first = build_emotion_set(raw, out)
    arrays = out / "emotion_set.npz"
    arrays.write_bytes(arrays.read_bytes()[: arrays.stat().st_size // 2])
    with pytest.raises(DatasetError, match=r"emotion_set\.npz: does not match manifest\.json"):
        load_emotion_set(raw, out, build=False)
    with pytest.warns(UserWarning, match="rebuilding"):
        es = load_emotion_set(raw, out)
    assert len(es) == first["total"]


def _deny(monkeypatch, target: Path) -> None:
    """Make ``open`` refuse ``target`` as an unreadable file does (tests run as root, so
    chmod would not do it)."""
    real_open = builtins.open

    def guarded(file, *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and Path(file) == target:
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded)


def test_unreadable_input_archive_says_what_to_do(tmp_path, monkeypatch):
    raw = fer_raw(tmp_path)
    _deny(monkeypatch, raw / "fer2013.zip")
    with pytest.raises(DatasetError, match=r"fer2013\.zip: cannot be read \(Permission denied\); "
                                           r"make it readable"):
        build_emotion_set(raw, tmp_path / "out")


def test_unreadable_file_in_a_folder_says_what_to_do(tmp_path, monkeypatch):
    raw = tmp_path / "raw"
    folder_dataset(raw)
    _deny(monkeypatch, raw / "mine" / "sad" / "1.png")
    with pytest.raises(DatasetError, match=r"sad/1\.png: cannot be read .*make it readable"):
        build_emotion_set(raw, tmp_path / "out")


def test_unwritable_data_dir_says_what_to_do(raw, tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(DatasetError, match=r"processed: cannot write the emotion set there "
                                           r"\(Permission denied\).*BPLF_DATA_DIR"):
        build_emotion_set(raw, tmp_path / "processed")


def test_data_dir_that_is_a_file(raw, tmp_path):
    (tmp_path / "processed").write_text("not a folder")
    with pytest.raises(DatasetError, match=r"processed: cannot write the emotion set there"):
        build_emotion_set(raw, tmp_path / "processed")


# -- silent losses -------------------------------------------------------------------------------

def test_unbalanced_quote_in_csv_loses_only_its_line(tmp_path):
    rows = [fer_row(i % 7, face(i), "Training") for i in range(3)]
    rows.append(f'3,"{pixels(face(50))},Training')  # no closing quote
    rows += [fer_row(i % 7, face(i), "PrivateTest") for i in range(3, 7)]
    rows.append(f'5,"{pixels(face(60))}",PublicTest')  # quoted: fine
    raw = fer_csv(tmp_path / "raw", rows)
    manifest, es = build(raw, tmp_path)
    assert len(es) == 8
    (entry,) = skipped(manifest, "fer2013")
    assert "fer2013.csv line 5" in entry["reason"] and "quote" in entry["reason"]


def test_csv_with_byte_order_mark(tmp_path):
    rows = [fer_row(i % 7, face(i), "Training") for i in range(4)]
    raw = fer_csv(tmp_path / "raw", rows, newline="\r\n", encoding="utf-8-sig")
    _, es = build(raw, tmp_path)
    assert len(es) == 4


@pytest.mark.parametrize("kind", ["fer2013", "ckplus", "folder"])
def test_images_nested_below_an_emotion_folder_are_reported(tmp_path, kind):
    raw = tmp_path / "raw"
    raw.mkdir()
    nested = encode(face(4242))
    if kind == "fer2013":
        write_zip(raw / "fer2013.zip", {**fer_members(n_per=1),
                                        "train/happy/more/Training_4242.png": nested})
        where, expect = "train/happy/more/Training_4242.png", N_FER
    elif kind == "ckplus":
        write_zip(raw / "ckplus48.zip", {**ck_members(subjects=4),
                                         "CK+48/happy/S099/S099_001_00000001.png": nested})
        where, expect = "CK+48/happy/S099/S099_001_00000001.png", 4 * 6
    else:
        folder_dataset(raw)
        (raw / "mine" / "happy" / "sub").mkdir()
        (raw / "mine" / "happy" / "sub" / "x.png").write_bytes(nested)
        where, expect = "mine/happy/sub/x.png", 6
    manifest, es = build(raw, tmp_path)
    assert len(es) == expect
    (entry,) = [e for entries in manifest["skipped"].values() for e in entries]
    assert entry["file"].endswith(where)
    assert "nested below the emotion folder" in entry["reason"]


def test_images_outside_the_layout_are_reported(tmp_path):
    raw = fer_raw(tmp_path, {"valid/happy/PublicTest_1.png": encode(face(1)),
                             "train/Training_2.png": encode(face(2)),
                             "train/happy/Training_3.pgm": b"P5 48 48 255\n" + bytes(2304),
                             "README.txt": b"documentation is not reported"})
    manifest, es = build(raw, tmp_path)
    assert len(es) == N_FER
    reported = sorted(e["file"].split(":")[-1] for e in skipped(manifest, "fer2013"))
    assert reported == ["train/Training_2.png", "train/happy/Training_3.pgm",
                        "valid/happy/PublicTest_1.png"]


def test_symlinked_emotion_folder_is_followed(tmp_path):
    raw = tmp_path / "raw"
    mine = folder_dataset(raw)
    elsewhere = tmp_path / "elsewhere" / "fear"
    elsewhere.mkdir(parents=True)
    for i in range(3):
        (elsewhere / f"f{i}.png").write_bytes(encode(face(300 + i)))
    (mine / "fear").symlink_to(elsewhere, target_is_directory=True)
    (mine / "happy" / "loop").symlink_to(mine, target_is_directory=True)  # a cycle
    manifest, es = build(raw, tmp_path)
    assert len(es) == 6 + 3 and int((es.labels == 2).sum()) == 3
    (entry,) = skipped(manifest, "mine")
    assert entry["file"].endswith("mine/happy/loop") and "already read" in entry["reason"]


def test_dangling_links_are_reported(tmp_path):
    raw = tmp_path / "raw"
    mine = folder_dataset(raw)
    (mine / "happy" / "gone.png").symlink_to(tmp_path / "nowhere.png")
    (raw / "ckplus48.zip").symlink_to(tmp_path / "moved-away.zip")
    with pytest.warns(UserWarning, match=r"ckplus48\.zip: ignored \(a dangling symbolic link"):
        manifest, es = build(raw, tmp_path)
    assert len(es) == 6
    (entry,) = skipped(manifest, "mine")
    assert entry["file"].endswith("happy/gone.png") and "dangling symbolic link" in entry["reason"]
    (ignored,) = manifest["ignored"]
    assert ignored["file"].endswith("ckplus48.zip") and "dangling" in ignored["reason"]


def test_archive_members_leaving_the_archive_are_reported(tmp_path):
    raw = fer_raw(tmp_path, {"train/happy/../../evil.png": encode(face(1)),
                             "/etc/absolute.png": encode(face(2))})
    manifest, es = build(raw, tmp_path)
    assert len(es) == N_FER
    reasons = [e["reason"] for e in skipped(manifest, "fer2013")]
    assert len(reasons) == 2 and all("leaves the archive" in r for r in reasons)


def test_links_and_special_members_in_a_tar_are_reported(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    with tarfile.open(raw / "mine.tar.gz", "w:gz") as t:
        for i, emotion in enumerate(["happy", "sad"]):
            data = encode(face(i))
            info = tarfile.TarInfo(f"mine/{emotion}/{i}.png")
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("mine/happy/link.png")
        link.type, link.linkname = tarfile.SYMTYPE, "../sad/1.png"
        t.addfile(link)
        fifo = tarfile.TarInfo("mine/happy/pipe.png")
        fifo.type = tarfile.FIFOTYPE
        t.addfile(fifo)
    manifest, es = build(raw, tmp_path)
    assert len(es) == 2
    reasons = sorted(e["reason"] for e in skipped(manifest, "mine"))
    assert "link.png: link inside the archive" in reasons[0]
    assert "pipe.png: not a regular file" in reasons[1]


def test_special_file_in_a_folder_is_reported(tmp_path):
    raw = tmp_path / "raw"
    mine = folder_dataset(raw)
    os.mkfifo(mine / "sad" / "pipe.png")
    manifest, es = build(raw, tmp_path)
    assert len(es) == 6
    (entry,) = skipped(manifest, "mine")
    assert "pipe.png: not a regular file" in entry["reason"]


def test_duplicate_member_names_in_a_zip_are_reported(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    with zipfile.ZipFile(raw / "fer2013.zip", "w") as z:
        for name, data in fer_members(n_per=1).items():
            z.writestr(name, data)
        with pytest.warns(UserWarning, match="Duplicate name"):
            z.writestr("train/angry/Training_1.png", encode(face(999)))
    manifest, es = build(raw, tmp_path)
    assert len(es) == N_FER
    (entry,) = skipped(manifest, "fer2013")
    assert "Training_1.png: appears more than once" in entry["reason"]


def test_tar_made_from_dot_and_zip_made_on_windows(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    with tarfile.open(raw / "fer2013.tar.gz", "w:gz") as t:
        for name, data in fer_members(n_per=1).items():
            info = tarfile.TarInfo(f"./{name}")  # as made by `tar czf fer2013.tar.gz .`
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    write_zip(raw / "ckplus48.zip", {k.replace("/", "\\"): v
                                     for k, v in ck_members(subjects=4).items()})
    manifest, es = build(raw, tmp_path)
    assert int((es.source == "fer2013").sum()) == N_FER
    assert int((es.source == "ckplus").sum()) == 4 * 6
    assert manifest["skipped"] == {}


def test_oversized_member_is_not_read(tmp_path):
    raw = fer_raw(tmp_path, {"train/sad/Training_777.png": bytes(65 * 2**20)},
                  compression=zipfile.ZIP_DEFLATED)
    manifest, es = build(raw, tmp_path)
    assert len(es) == N_FER
    (entry,) = skipped(manifest, "fer2013")
    assert "Training_777.png: 65 MiB, too large" in entry["reason"]


def test_raw_dir_that_is_a_file(tmp_path):
    raw = fer_raw(tmp_path)
    with pytest.raises(DatasetError, match=r"fer2013\.zip: is a file, not a folder"):
        build_emotion_set(raw / "fer2013.zip", tmp_path / "out")


def test_archive_inside_an_archive_says_extract_it(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    inner = io.BytesIO()
    with tarfile.open(fileobj=inner, mode="w:gz") as t:
        t.addfile(tarfile.TarInfo("fer2013/fer2013.csv"), io.BytesIO(b""))
    write_zip(raw / "challenge.zip", {"fer2013.tar.gz": inner.getvalue()})
    with pytest.raises(DatasetError, match=r"challenge\.zip: not a recognised .* It holds "
                                           r"fer2013\.tar\.gz: extract"):
        build_emotion_set(raw, tmp_path / "out")


def test_every_image_unreadable_names_the_first_reason(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    write_zip(raw / "mine.zip", {"mine/happy/a.png": b"not an image"})
    with pytest.raises(DatasetError, match=r"mine\.zip: no usable image .*happy/a\.png: corrupt"):
        build_emotion_set(raw, tmp_path / "out")


# -- a lost set ----------------------------------------------------------------------------------

def test_arrays_of_another_build_are_not_served(raw, tmp_path):
    """A build killed between its two writes leaves its arrays under the previous manifest."""
    out = tmp_path / "processed"
    first = build_emotion_set(raw, out)
    other_raw = fer_raw(tmp_path / "other")
    build_emotion_set(other_raw, tmp_path / "other-out")
    shutil.copy(tmp_path / "other-out" / "emotion_set.npz", out / "emotion_set.npz")
    with pytest.raises(DatasetError, match=r"emotion_set\.npz: does not match manifest\.json"):
        load_emotion_set(raw, out, build=False)
    with pytest.warns(UserWarning, match="does not match .* rebuilding"):
        es = load_emotion_set(raw, out)
    assert len(es) == first["total"] and es.manifest["fingerprint"] == first["fingerprint"]
    assert set(es.source) == {"fer2013", "ckplus"}


def test_damaged_real_set_with_no_raw_data_is_not_replaced_silently(raw, tmp_path):
    out = tmp_path / "processed"
    build_emotion_set(raw, out)
    arrays = out / "emotion_set.npz"
    arrays.write_bytes(arrays.read_bytes()[:1000])
    with pytest.raises(DatasetError, match=r"does not match .* No raw dataset was found"):
        build_emotion_set(tmp_path / "nothing-here", out)


def test_stale_temporary_files_are_removed(raw, tmp_path):
    out = tmp_path / "processed"
    out.mkdir()
    stale = [out / ".emotion_set.npz.k1ll3d.tmp", out / ".manifest.json.k1ll3d.tmp"]
    for path in stale:
        path.write_bytes(b"half a build")
    with pytest.warns(UserWarning, match="removed 2 temporary file.* interrupted build"):
        build_emotion_set(raw, out)
    assert sorted(p.name for p in out.iterdir()) == ["emotion_set.npz", "manifest.json"]


def test_set_built_before_checksums(raw, tmp_path):
    """A set written by the old builder (no checksum) loads with a warning, or is rebuilt."""
    out = tmp_path / "processed"
    build_emotion_set(raw, out)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest.pop("arrays", None)
    manifest.update(builder_version=1, fingerprint="0" * 64)
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.warns(UserWarning, match="built by an older bplf"):
        es = load_emotion_set(raw, out, build=False)
    assert len(es) == manifest["total"]
    es = load_emotion_set(raw, out)
    assert es.manifest["builder_version"] > 1 and "sha256" in es.manifest["arrays"]
    np.testing.assert_array_equal(es.labels, load_emotion_set(raw, out, build=False).labels)
