"""The emotion-set builder on small archives made here in the real distribution layouts."""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bplf.data import (
    EMOTIONS,
    DatasetError,
    build_emotion_set,
    find_sources,
    load_emotion_set,
)
from bplf.data import builder as builder_module
from bplf.data.synthetic import make_identity, render_face


def face(seed: int, emotion: str = "happy", size: int = 48) -> np.ndarray:
    """A distinct procedural face (never a real image)."""
    rng = np.random.default_rng(seed)
    img = render_face(make_identity(rng), emotion, rng)
    if size != 48:
        img = np.asarray(Image.fromarray(img).resize((size, size)))
    return img


def encode(img: np.ndarray, fmt: str = "PNG", mode: str | None = None) -> bytes:
    pil = Image.fromarray(img)
    if mode:
        pil = pil.convert(mode)
    buf = io.BytesIO()
    pil.save(buf, format=fmt)
    return buf.getvalue()


def write_zip(path: Path, members: dict[str, bytes],
              compression: int = zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def fer_members(n_per: int = 2, seed: int = 0) -> dict[str, bytes]:
    members, k = {}, seed * 1000
    for e in EMOTIONS:
        for prefix, folder in (("Training", "train"), ("PublicTest", "test"),
                               ("PrivateTest", "test")):
            for _ in range(n_per):
                k += 1
                members[f"{folder}/{e}/{prefix}_{k}.png"] = encode(face(k, e))
    return members


def pixels(img: np.ndarray) -> str:
    """An image as FER-2013's CSV writes it: its values separated by spaces."""
    return " ".join(map(str, img.ravel()))


def fer_row(label: int, img: np.ndarray, usage: str) -> str:
    """One line of FER-2013's CSV: ``emotion,pixels,Usage``."""
    return f"{label},{pixels(img)},{usage}"


def fer_csv(raw: Path, rows: list[str], newline: str = "\n", encoding: str = "utf-8") -> Path:
    """``raw/fer2013.csv``: FER-2013's header, then ``rows``, each ended by ``newline``."""
    raw.mkdir(parents=True, exist_ok=True)
    text = newline.join(["emotion,pixels,Usage", *rows]) + newline
    (raw / "fer2013.csv").write_bytes(text.encode(encoding))
    return raw


def ck_members(subjects: int = 12, seed: int = 500) -> dict[str, bytes]:
    names = ["anger", "disgust", "fear", "happy", "sadness", "surprise", "contempt"]
    members, k = {}, seed
    for s in range(subjects):
        for folder in names:
            k += 1
            members[f"CK+48/{folder}/S{s + 10:03d}_001_{k:08d}.png"] = encode(face(k))
    return members


def jaffe_members(subjects=("KA", "KL", "KM", "KR", "MK"), seed: int = 900) -> dict[str, bytes]:
    members, k = {}, seed
    for subj in subjects:
        for code in ("AN", "DI", "FE", "HA", "NE", "SA", "SU"):
            k += 1
            mode = "P" if k % 3 == 0 else None  # JAFFE ships some palette-mode TIFFs
            members[f"jaffe/{subj}.{code}1.{k}.tiff"] = encode(face(k, size=256), "TIFF", mode)
    members["jaffe/semantic_ratings.txt"] = b"# HAP SAD SUR ANG DIS FEA PIC\n"
    return members


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    raw = tmp_path / "raw"
    raw.mkdir()
    write_zip(raw / "fer2013.zip", fer_members())
    write_zip(raw / "ckplus48.zip", ck_members())
    write_zip(raw / "jaffe.zip", jaffe_members())
    return raw


def build(raw: Path, tmp_path: Path, **kw):
    out = tmp_path / "processed"
    manifest = build_emotion_set(raw, out, **kw)
    return manifest, load_emotion_set(raw, out, build=False)


def test_builds_all_three_sources(raw, tmp_path):
    manifest, es = build(raw, tmp_path)
    assert not manifest["synthetic"] and not es.synthetic
    assert es.images.shape[1:] == (48, 48) and es.images.dtype == np.uint8
    per_source = {s: int((es.source == s).sum()) for s in ("fer2013", "ckplus", "jaffe")}
    assert per_source == {"fer2013": 7 * 3 * 2, "ckplus": 12 * 6, "jaffe": 5 * 7}
    # FER keeps its official split, read from the file names
    fer = es.select(source="fer2013")
    assert {s: int((fer.split == s).sum()) for s in ("train", "val", "test")} == {
        "train": 14, "val": 14, "test": 14}
    # CK+ contempt is left out and counted
    assert sum(manifest["excluded"]["ckplus"].values()) == 12
    assert "contempt" in next(iter(manifest["excluded"]["ckplus"]))
    # labels are harmonised: CK+ 'sadness' -> sad, JAFFE 'SA' -> sad
    assert set(es.select(source="ckplus").labels) == set(range(6))  # no neutral in CK+48
    assert set(es.select(source="jaffe").labels) == set(range(7))
    # counts in the manifest match the arrays, and inputs are checksummed
    counts = manifest["counts"].values()
    total = sum(n for src in counts for sp in src.values() for n in sp.values())
    assert total == len(es) == manifest["total"]
    assert all(len(i["sha256"]) == 64 for i in manifest["inputs"])


def test_splits_are_subject_disjoint(raw, tmp_path):
    _, es = build(raw, tmp_path)
    for source in ("ckplus", "jaffe"):
        sub = es.select(source=source)
        groups = {sp: set(sub.subject[sub.split == sp]) for sp in ("train", "val", "test")}
        assert all(groups.values()), f"{source}: every split should get subjects: {groups}"
        assert not groups["train"] & groups["val"]
        assert not groups["train"] & groups["test"]
        assert not groups["val"] & groups["test"]


def test_extracted_folders_match_zips(raw, tmp_path):
    extracted = tmp_path / "extracted"
    for archive in raw.iterdir():
        with zipfile.ZipFile(archive) as z:
            z.extractall(extracted / archive.stem if archive.stem == "fer2013" else extracted)
    _, from_zip = build(raw, tmp_path / "a")
    _, from_dirs = build(extracted, tmp_path / "b")
    for field in ("images", "labels", "source", "subject", "split"):
        np.testing.assert_array_equal(getattr(from_zip, field), getattr(from_dirs, field))


def test_fer_csv_reader(tmp_path):
    rows = [fer_row(i % 7, face(i), usage)
            for i, usage in enumerate(["Training", "PublicTest", "PrivateTest"] * 7)]
    rows.append("3,1 2 3,Training")  # too few pixels
    rows.append("9," + " ".join(["0"] * 2304) + ",Training")  # no such emotion
    raw = fer_csv(tmp_path / "raw", rows)
    manifest, es = build(raw, tmp_path)
    assert len(es) == 21
    np.testing.assert_array_equal(es.images[0], face(0))
    assert {s: int((es.split == s).sum()) for s in ("train", "val", "test")} == {
        "train": 7, "val": 7, "test": 7}
    skipped = manifest["skipped"]["fer2013"]
    assert len(skipped) == 2
    assert "line 23" in skipped[0]["reason"] and "2304" in skipped[0]["reason"]
    assert "line 24" in skipped[1]["reason"] and "0..6" in skipped[1]["reason"]


def test_generic_folder_resizes_and_maps_names(tmp_path):
    raw = tmp_path / "raw"
    members = {f"mine/{name}/{i}.png": encode(face(i, size=64))
               for i, name in enumerate(["happiness", "sadness", "angry", "neutral"] * 5)}
    write_zip(raw.mkdir() or raw / "mine.zip", members)
    manifest, es = build(raw, tmp_path)
    assert set(es.source) == {"mine"} and len(es) == 20
    assert manifest["notes"]["mine"]["resized_to_48"] == 20
    assert sorted(set(es.labels)) == sorted(EMOTIONS.index(e) for e in ("happy", "sad", "angry",
                                                                        "neutral"))


def test_exact_duplicates_removed_within_and_across_sources(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    fer = fer_members()
    dup = encode(face(4242))
    fer["train/happy/Training_9000.png"] = dup
    fer["train/happy/Training_9001.png"] = dup  # within FER, within a split
    fer["test/happy/PrivateTest_9002.png"] = dup  # across splits: the test copy is kept
    write_zip(raw / "fer2013.zip", fer)
    ck = ck_members()
    ck["CK+48/happy/S099_001_00000001.png"] = dup  # across sources
    write_zip(raw / "ckplus48.zip", ck)
    manifest, es = build(raw, tmp_path)
    d = manifest["duplicates"]
    assert d["removed"] == 3 and d["across_sources"] == 1 and d["removed_by_source"] == {
        "fer2013": 2, "ckplus": 1}
    same = [i for i in range(len(es)) if np.array_equal(es.images[i], face(4242))]
    assert len(same) == 1 and es.split[same[0]] == "test" and es.source[same[0]] == "fer2013"
    assert len({img.tobytes() for img in es.images}) == len(es)


@pytest.mark.parametrize("bad, reason", [
    (b"", "empty file"),
    (b"this is not an image", "corrupt"),
    ("truncated", "corrupt or truncated"),
    ("wrong size", "64x64, expected 48x48"),
    ("16-bit", "unsupported image mode"),
])
def test_bad_images_are_skipped_and_listed(tmp_path, bad, reason):
    raw = tmp_path / "raw"
    raw.mkdir()
    fer = fer_members(n_per=1)
    if bad == "truncated":
        bad = encode(face(1), "PNG")[:200]
    elif bad == "wrong size":
        bad = encode(face(1, size=64))
    elif bad == "16-bit":
        bad = encode((face(1).astype(np.uint16) * 256), "PNG")
    fer["train/sad/Training_777.png"] = bad
    write_zip(raw / "fer2013.zip", fer)
    manifest, es = build(raw, tmp_path)
    assert len(es) == 7 * 3
    (skipped,) = manifest["skipped"]["fer2013"]
    assert skipped["file"].endswith("fer2013.zip:train/sad/Training_777.png")
    assert reason in skipped["reason"] and "Training_777.png" in skipped["reason"]


@pytest.mark.parametrize("members, message", [
    ({"train/bored/Training_1.png": None}, "unknown emotion folder(s) ['bored']"),
    ({"CK+48/smirk/S010_001_00000001.png": None}, "unknown CK+ emotion folder(s) ['smirk']"),
    ({"jaffe/KA.XX1.1.tiff": None}, "unknown JAFFE expression code 'XX'"),
    ({"readme.txt": b"hello"}, "not a recognised emotion dataset"),
    ({}, "is empty"),
])
def test_bad_archives_raise_naming_the_file(tmp_path, members, message):
    raw = tmp_path / "raw"
    raw.mkdir()
    members = {k: v if v is not None else encode(face(1, size=256 if "jaffe" in k else 48), "TIFF"
                                                   if "jaffe" in k else "PNG")
               for k, v in members.items()}
    path = write_zip(raw / "thing.zip", members)
    with pytest.raises(DatasetError) as err:
        build_emotion_set(raw, tmp_path / "out")
    assert message in str(err.value) and str(path) in str(err.value)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_not_a_zip_raises(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "fer2013.zip").write_bytes(b"PK\x03\x04 garbage, not a zip")
    with pytest.raises(DatasetError, match=r"fer2013\.zip: not a readable zip archive"):
        build_emotion_set(raw, tmp_path / "out")


def test_second_build_is_a_noop_unless_forced(raw, tmp_path):
    out = tmp_path / "processed"
    first = build_emotion_set(raw, out)
    arrays = out / "emotion_set.npz"
    stamp = arrays.stat().st_mtime_ns
    again = build_emotion_set(raw, out)
    assert again == first and arrays.stat().st_mtime_ns == stamp
    build_emotion_set(raw, out, force=True)
    assert arrays.stat().st_mtime_ns != stamp
    # a changed input is noticed
    write_zip(raw / "ckplus48.zip", ck_members(subjects=6))
    assert build_emotion_set(raw, out)["fingerprint"] != first["fingerprint"]


def test_failed_build_leaves_nothing_half_written(raw, tmp_path, monkeypatch):
    out = tmp_path / "processed"

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(builder_module.np, "savez", boom)
    with pytest.raises(DatasetError, match=r"processed: cannot write .* \(disk full\)"):
        build_emotion_set(raw, out)
    assert list(out.iterdir()) == []


def test_synthetic_fallback_when_no_raw_data(tmp_path):
    with pytest.warns(UserWarning, match="NO RAW DATASET FOUND"):
        manifest = build_emotion_set(tmp_path / "nothing-here", tmp_path / "out")
    es = load_emotion_set(tmp_path / "nothing-here", tmp_path / "out", build=False)
    assert manifest["synthetic"] and es.synthetic and set(es.source) == {"synthetic"}
    assert sorted(set(es.labels)) == list(range(7))
    groups = {sp: set(es.subject[es.split == sp]) for sp in ("train", "val", "test")}
    assert all(groups.values()) and not (groups["train"] & (groups["val"] | groups["test"]))
    # identities vary: faces of one emotion are not all alike
    happy = es.select(emotion="happy").images.astype(float)
    assert happy.std(axis=0).mean() > 10


def test_real_set_is_kept_when_raw_data_goes_missing(raw, tmp_path):
    out = tmp_path / "processed"
    real = build_emotion_set(raw, out)
    arrays = out / "emotion_set.npz"
    stamp = arrays.stat().st_mtime_ns
    with pytest.warns(UserWarning, match="keeping the emotion set"):
        kept = build_emotion_set(tmp_path / "nothing-here", out)
    assert kept == real and arrays.stat().st_mtime_ns == stamp
    with pytest.warns(UserWarning, match="NO RAW DATASET FOUND"):
        assert build_emotion_set(tmp_path / "nothing-here", out, force=True)["synthetic"]


def test_load_builds_when_missing_and_torch_dataset(raw, tmp_path):
    out = tmp_path / "fresh"
    es = load_emotion_set(raw, out)
    assert (out / "manifest.json").exists() and len(es) > 0
    ds = es.torch_dataset("train", flip=True)
    img, label = ds[0]
    assert img.shape == (1, 48, 48) and img.dtype == torch.uint8 and 0 <= label < 7
    torch.manual_seed(0)
    flips = {bool((ds[0][0] != ds.images[0]).any()) for _ in range(20)}
    assert flips == {True, False}  # mirrored about half the time
    counts = es.counts()
    assert counts["count"].sum() == len(es)


def test_load_without_build_explains_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="not built"):
        load_emotion_set(out=tmp_path, build=False)


def test_two_copies_of_a_source_are_refused(raw):
    with zipfile.ZipFile(raw / "fer2013.zip") as z:
        z.extractall(raw / "fer2013")
    with pytest.raises(DatasetError, match="fer2013 was found 2 times"):
        find_sources(raw)


SHARED = Path(os.environ.get("BPLF_RAW_DIR", "")) if os.environ.get("BPLF_RAW_DIR") else None


@pytest.mark.skipif(SHARED is None or not (SHARED / "fer2013.zip").exists(),
                    reason="the public datasets are not in BPLF_RAW_DIR")
def test_real_emotion_set_counts():
    """On the real archives: all FER-2013 less exact duplicates, 927 CK+, 213 JAFFE."""
    es = load_emotion_set()
    m = es.manifest
    fer_removed = m["duplicates"]["removed_by_source"].get("fer2013", 0)
    assert (es.source == "fer2013").sum() == 35887 - fer_removed
    assert 1000 < fer_removed < 3000  # FER-2013 is known to hold ~1,800 exact duplicates
    assert (es.source == "ckplus").sum() == 927
    assert sum(m["excluded"]["ckplus"].values()) == 54
    assert (es.source == "jaffe").sum() == 213
    assert m["notes"]["jaffe"]["face_detection"]["detected"] >= 200
    assert m["skipped"] == {}
    for source in ("ckplus", "jaffe"):
        sub = es.select(source=source)
        groups = [set(sub.subject[sub.split == sp]) for sp in ("train", "val", "test")]
        assert not (groups[0] & groups[1] or groups[0] & groups[2] or groups[1] & groups[2])
    fer_test = es.select(source="fer2013", split="test")
    assert 3400 < len(fer_test) <= 3589
    assert json.dumps(m)  # the manifest is plain JSON
