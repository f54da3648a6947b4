"""ImageIndex: building from lists and folders, exact search, safe save/load, and optional FAISS search."""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from mmlesson import search
from mmlesson.course import index_file
from mmlesson.data import ShapesWorld
from mmlesson.errors import MMLessonError
from mmlesson.search import Hit, ImageIndex


@pytest.fixture(scope="module")
def images() -> list[Image.Image]:
    return ShapesWorld(seed=0).sample(10).images


@pytest.fixture(scope="module")
def index(bundle, images) -> ImageIndex:
    return ImageIndex.build(bundle, images, batch_size=4, progress=False)


@pytest.fixture
def folder(tmp_path: Path, images) -> Path:
    """Three good PNGs written out of order, a corrupt one, an empty one, a text file and a fake PNG."""
    gallery = tmp_path / "gallery"
    gallery.mkdir()
    for name, image in zip(["c.png", "a.PNG", "b.jpg"], images):
        image.save(gallery / name)
    (gallery / "d_corrupt.png").write_bytes((gallery / "c.png").read_bytes()[:60])
    (gallery / "e_empty.png").write_bytes(b"")
    (gallery / "f_text.png").write_text("not an image")
    (gallery / "notes.txt").write_text("ignored: not an image extension")
    return gallery


def brute_force(index: ImageIndex, query_vector: torch.Tensor) -> torch.Tensor:
    return index.embeddings @ query_vector


def assert_matches_brute_force(hits: list[Hit], expected_scores: torch.Tensor, k: int) -> None:
    assert [h.rank for h in hits] == list(range(min(k, len(expected_scores))))
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    top = torch.sort(expected_scores, descending=True).values[:k]
    assert torch.allclose(torch.tensor(scores), top, atol=1e-5)
    for hit in hits:
        assert hit.score == pytest.approx(expected_scores[hit.index].item(), abs=1e-5)


def test_build_from_list_keeps_normalized_embeddings_ids_and_model(bundle, images, index):
    assert len(index) == len(images)
    assert index.ids == [str(i) for i in range(len(images))]
    assert index.model_name == bundle.name and index.skipped == []
    assert index.embeddings.dtype == torch.float32
    assert torch.allclose(index.embeddings.norm(dim=1), torch.ones(len(images)), atol=1e-5)
    assert torch.allclose(index.embeddings, bundle.encode_images(images), atol=1e-5)


def test_build_from_folder_sorts_files_and_lists_unreadable_ones(bundle, folder):
    index = ImageIndex.build(bundle, folder, batch_size=2, progress=False)
    assert index.ids == [str(folder / name) for name in ["a.PNG", "b.jpg", "c.png"]]
    skipped = dict(index.skipped)
    assert list(skipped) == [str(folder / n) for n in ["d_corrupt.png", "e_empty.png", "f_text.png"]]
    assert "truncated or corrupt" in skipped[str(folder / "d_corrupt.png")]
    assert "empty (0 bytes)" in skipped[str(folder / "e_empty.png")]
    assert "not an image file" in skipped[str(folder / "f_text.png")]
    expected = bundle.encode_images([folder / "a.PNG", folder / "b.jpg", folder / "c.png"])
    assert torch.allclose(index.embeddings, expected, atol=1e-5)


def test_build_from_list_skips_bad_items_by_position(bundle, images, folder):
    items = [
        images[0],
        folder / "e_empty.png",
        np.zeros((4, 4, 5), np.uint8),
        folder / "missing.png",
        images[1],
    ]
    index = ImageIndex.build(bundle, items, progress=False)
    assert index.ids == ["0", "4"]
    assert [item for item, _ in index.skipped] == [
        str(folder / "e_empty.png"),
        "2",
        str(folder / "missing.png"),
    ]


def test_empty_or_unreadable_gallery_is_refused(bundle, tmp_path, folder):
    with pytest.raises(ValueError, match="empty"):
        ImageIndex.build(bundle, [], progress=False)
    with pytest.raises(ValueError, match="empty"):
        ImageIndex.build(bundle, tmp_path / "gallery" / "..", progress=False)  # holds only a folder
    with pytest.raises(ValueError, match="none of the 2 images"):
        ImageIndex.build(bundle, [folder / "e_empty.png", folder / "f_text.png"], progress=False)


def test_text_search_equals_brute_force(bundle, index):
    hits = index.search("a large red circle on the left", k=4)
    assert len(hits) == 4 and all(isinstance(h, Hit) for h in hits)
    expected = brute_force(index, bundle.encode_texts("a large red circle on the left")[0])
    assert_matches_brute_force(hits, expected, k=4)
    assert [h.id for h in hits] == [str(h.index) for h in hits]


def test_image_query_finds_itself_first(bundle, images, index):
    hits = index.search(images[3], k=5)
    assert hits[0].index == 3 and hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert_matches_brute_force(hits, brute_force(index, bundle.encode_images(images[3])[0]), k=5)


def test_embedding_query_is_normalized_torch_or_numpy(index):
    vector = torch.randn(index.dim, generator=torch.Generator().manual_seed(0))
    expected = brute_force(index, vector / vector.norm())
    assert_matches_brute_force(index.search(vector * 7.0, k=3), expected, k=3)
    assert index.search(vector.numpy(), k=3) == index.search(vector, k=3)


def test_k_larger_than_gallery_returns_all_and_k_below_one_is_refused(index):
    assert sorted(h.index for h in index.search("a circle", k=100)) == list(range(len(index)))
    for k in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="k must be a positive integer"):
            index.search("a circle", k=k)


def test_embedding_of_wrong_length_is_refused(index):
    with pytest.raises(ValueError, match=rf"length {index.dim}.*length {index.dim + 1}"):
        index.search(torch.ones(index.dim + 1))
    with pytest.raises(ValueError, match="not all zeros"):
        index.search(np.zeros(index.dim, np.float32))


def test_duplicates_are_kept_and_both_found(bundle, images):
    index = ImageIndex.build(bundle, [images[0], images[1], images[0]], progress=False)
    hits = index.search(images[0], k=2)
    assert {h.index for h in hits} == {0, 2}
    assert hits[1].score == pytest.approx(1.0, abs=1e-4)


def test_save_load_round_trip(bundle, index, tmp_path):
    path = index.save(tmp_path / "gallery.safetensors")
    loaded = ImageIndex.load(path, clip=bundle)
    assert torch.equal(loaded.embeddings, index.embeddings)
    assert loaded.ids == index.ids and loaded.model_name == index.model_name
    assert loaded.search("a small blue square", k=5) == index.search("a small blue square", k=5)
    assert [p.name for p in tmp_path.iterdir()] == ["gallery.safetensors"]  # no temporary file left behind


def test_skipped_items_survive_save_and_load(bundle, folder, tmp_path):
    index = ImageIndex.build(bundle, folder, progress=False)
    loaded = ImageIndex.load(index.save(tmp_path / "i.safetensors"))
    assert loaded.skipped == index.skipped and loaded.ids == index.ids


def test_index_loaded_without_bundle_searches_embeddings_only(index, images, tmp_path):
    loaded = ImageIndex.load(index.save(tmp_path / "i.safetensors"))
    assert loaded.search(index.embeddings[2], k=1)[0].index == 2
    for query in ("a red circle", images[0]):
        with pytest.raises(ValueError, match="clip="):
            loaded.search(query)


def test_truncated_file_is_refused(index, tmp_path):
    path = index.save(tmp_path / "i.safetensors")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="damaged.*rebuild the index"):
        ImageIndex.load(path)


@pytest.mark.parametrize("where", ["embeddings", "ids"])
def test_edited_byte_is_refused(index, tmp_path, where):
    path = index.save(tmp_path / "i.safetensors")
    data = path.read_bytes()
    if where == "embeddings":  # flip one bit of the last float
        data = data[:-1] + bytes([data[-1] ^ 0x01])
    else:  # rename item "3" to "7" in the ids' JSON (still valid JSON, still parses)
        data = data.replace(b'"3"', b'"7"', 1)
    path.write_bytes(data)
    with pytest.raises(ValueError, match="damaged.*rebuild the index"):
        ImageIndex.load(path)


def test_every_byte_of_the_file_is_checked_skipped_list_included(bundle, folder, tmp_path):
    index = ImageIndex.build(bundle, folder, progress=False)
    path = index.save(tmp_path / "i.safetensors")
    data = path.read_bytes()
    assert b"empty (0 bytes)" in data and b'"version":"2"' in data
    path.write_bytes(data.replace(b"empty (0 bytes)", b"empty (1 bytes)", 1))  # still valid JSON
    with pytest.raises(search.DamagedIndexError) as caught:
        ImageIndex.load(path)
    # lesson 03 prints this message, and its output is checked
    assert (
        str(caught.value)
        == f"{path} is damaged (its checksum does not match its contents): rebuild the index"
    )


def test_damaged_files_are_learner_errors_with_one_message(index, tmp_path):
    path = index.save(tmp_path / "i.safetensors")
    data = path.read_bytes()
    path.write_bytes(data[:100])
    for bad in (path, tmp_path):  # truncated; a directory
        with pytest.raises(search.DamagedIndexError) as caught:
            ImageIndex.load(bad)
        assert isinstance(caught.value, MMLessonError) and isinstance(caught.value, ValueError)
        assert "is damaged or is not an image index saved by ImageIndex.save" in str(caught.value)
    with pytest.raises(FileNotFoundError, match="no index file at"):
        ImageIndex.load(tmp_path / "missing.safetensors")


def test_files_of_format_1_still_load(index, tmp_path):
    """Format 1 hashed the embeddings, the ids and the model name, not the rest of the header."""
    ids = index_file._ids_tensor(index.ids)
    metadata = {"format": index_file.FORMAT, "version": "1", "model": "m", "skipped": '[["x", "why"]]'}
    metadata["sha256"] = index_file._checksum_v1(index.embeddings, ids, "m")
    save_file({"embeddings": index.embeddings, "ids": ids}, str(tmp_path / "v1.safetensors"), metadata)
    loaded = ImageIndex.load(tmp_path / "v1.safetensors")
    assert loaded.ids == index.ids and loaded.skipped == [("x", "why")] and loaded.model_name == "m"
    assert torch.equal(loaded.embeddings, index.embeddings)


def test_files_that_are_not_an_index_are_refused(tmp_path, folder):
    other = tmp_path / "weights.safetensors"
    save_file({"embeddings": torch.ones(2, 4)}, str(other))
    with pytest.raises(ValueError, match="not an image index"):
        ImageIndex.load(other)
    with pytest.raises(ValueError, match="not an image index"):
        ImageIndex.load(folder / "c.png")


def test_index_of_another_model_is_refused(bundle, index, tmp_path):
    path = index.save(tmp_path / "i.safetensors")
    other = dataclasses.replace(bundle, name="another-clip")
    with pytest.raises(
        ValueError, match=f"built with {bundle.name}, you passed another-clip.*not comparable"
    ):
        ImageIndex.load(path, clip=other)


def test_failed_save_leaves_no_file(index, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(OSError):
        index.save(blocker / "i.safetensors")
    assert list(tmp_path.iterdir()) == [blocker]

    target = tmp_path / "i.safetensors"
    index.save(target)
    before = target.read_bytes()

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):  # the old index stays: only the rename replaces it
        ImageIndex(index.embeddings[:2], ["x", "y"], index.model_name).save(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "i.safetensors"]
    assert target.read_bytes() == before


def random_index(n: int = 2000, dim: int = 16, seed: int = 0) -> tuple[ImageIndex, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    vectors = torch.nn.functional.normalize(torch.randn(n + 50, dim, generator=generator), dim=1)
    return ImageIndex(vectors[:n], [str(i) for i in range(n)], "random"), vectors[n:]


@pytest.mark.parametrize(
    ("kind", "params"), [("ivf", {"nlist": 32, "nprobe": 12}), ("hnsw", {"m": 16, "ef_search": 64})]
)
def test_approximate_search_has_high_recall(kind, params):
    index, queries = random_index()
    approximate = index.approximate(kind, **params)
    recall = approximate.recall(list(queries), k=10)
    print(f"{kind} {params}: recall@10 = {recall:.3f}")
    assert recall > 0.9
    hits = approximate.search(queries[0], k=10)
    assert [h.rank for h in hits] == list(range(10))
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_approximate_search_returns_all_for_large_k_and_refuses_bad_params():
    index, queries = random_index(n=50)
    assert len(index.approximate("hnsw").search(queries[0], k=100)) == 50
    with pytest.raises(ValueError, match="unknown ivf parameters"):
        index.approximate("ivf", ef_search=10)
    with pytest.raises(ValueError, match="unknown kind"):
        index.approximate("lsh")


def test_approximate_hands_faiss_checked_parameters_and_records_them():
    index, queries = random_index(n=400)
    hnsw = index.approximate("hnsw", m=np.int64(8), ef_search=np.int32(20), ef_construction=100)
    assert hnsw.params == {"m": 8, "ef_search": 20, "ef_construction": 100}
    assert (hnsw.faiss_index.hnsw.efSearch, hnsw.faiss_index.hnsw.efConstruction) == (20, 100)
    assert repr(hnsw) == "ApproximateIndex('hnsw', m=8, ef_search=20, ef_construction=100, 400 images)"
    ivf = index.approximate("ivf")
    assert ivf.params == {"nlist": 20, "nprobe": 1}  # defaults: sqrt(400) cells, a sixteenth of them searched
    assert (ivf.faiss_index.nlist, ivf.faiss_index.nprobe) == (20, 1)
    assert len(index.approximate("ivf", nlist=400, nprobe=400).search(queries[0], k=5)) == 5  # the limits
    assert len(index.approximate("hnsw", m=2, ef_search=1).search(queries[0], k=5)) == 5


@pytest.mark.parametrize(
    ("kind", "params", "message"),
    [
        ("hnsw", {"m": 1}, r"m must be a whole number from 2 to 256, got 1: .*FAISS crashes below 2"),
        ("hnsw", {"m": 300}, r"above 256 the links take more memory than the vectors.*e.g. m=32"),
        ("hnsw", {"ef_search": 0}, r"ef_search must be a whole number from 1 to 4096, got 0.*ef_search=64"),
        ("hnsw", {"ef_construction": 5000}, r"ef_construction must be a whole number from 1 to 4096"),
        ("hnsw", {"m": "16"}, r"m must be a whole number from 2 to 256, got '16'"),
        ("ivf", {"nlist": 51}, r"nlist must be a whole number from 1 to 50, got 51.*e.g. nlist=7"),
        ("ivf", {"nlist": 10, "nprobe": 11}, r"nprobe must be a whole number from 1 to 10, got 11"),
        ("ivf", {"nprobe": 2.0}, r"nprobe must be a whole number from 1 to 7, got 2.0"),
        (
            "hnsw",
            {"nlist": 4},
            r"unknown hnsw parameters \['nlist'\]; it takes m, ef_search, ef_construction",
        ),
    ],
)
def test_approximate_refuses_bad_parameters_before_faiss_sees_them(kind, params, message, monkeypatch):
    index, _ = random_index(n=50)
    monkeypatch.setitem(sys.modules, "faiss", None)  # the check needs no FAISS: it runs first
    with pytest.raises(search.InputError, match=message):
        index.approximate(kind, **params)


def test_queries_are_told_apart_by_type_and_shape(bundle, images, index):
    vector = index.embeddings[4]
    expected = index.search(vector, k=3)
    for same in (vector[None], vector.numpy(), vector.numpy()[None], vector.double()):
        assert [h.index for h in index.search(same, k=3)] == [h.index for h in expected]
    ones = index.search(torch.ones(index.dim), k=3)
    assert index.search(np.ones((1, index.dim), np.uint8), k=3) == ones  # one row: an embedding, any dtype
    as_array = index.search(np.asarray(images[4]), k=1)  # [H, W, 3] uint8: an image
    assert as_array[0].index == 4 and as_array == index.search(images[4], k=1)
    with pytest.raises(search.InputError, match=rf"\[1, {index.dim}\]; got shape \(2, {index.dim}\)"):
        index.search(torch.ones(2, index.dim))


def test_build_refuses_a_bad_dtype_before_embedding_anything(bundle, images, monkeypatch):
    def embed(*args, **kwargs):
        raise AssertionError("embedded before the dtype was checked")

    monkeypatch.setattr(bundle, "encode_images", embed)
    with pytest.raises(ValueError, match="float32 or float16"):
        ImageIndex.build(bundle, images, progress=False, dtype=torch.float64)


def test_recall_at_k_counts_shared_results():
    def hits(*indices):
        return [Hit(rank, i, str(i), 1.0 - rank / 10) for rank, i in enumerate(indices)]

    assert search.recall_at_k([hits(1, 2), hits(3, 4)], [hits(2, 1), hits(3, 9)]) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="same, nonzero number"):
        search.recall_at_k([hits(1)], [])


def assert_same_hits(many: list[list[Hit]], single: list[list[Hit]]) -> None:
    """The same images in the same order, scores equal up to float rounding (BLAS sums in another order)."""
    assert [[(h.rank, h.index, h.id) for h in hits] for hits in many] == [
        [(h.rank, h.index, h.id) for h in hits] for hits in single
    ]
    for hits_many, hits_single in zip(many, single):
        assert [h.score for h in hits_many] == pytest.approx([h.score for h in hits_single], abs=1e-5)


def test_search_many_equals_one_search_per_query(bundle, images, index, monkeypatch):
    queries = ["a red circle", images[2], index.embeddings[5] * 3.0, "a small green triangle"]
    expected = [index.search(q, k=4) for q in queries]
    assert_same_hits(index.search_many(queries, k=4), expected)
    assert_same_hits(index.search_many(["a red circle", "a small green triangle"], k=4), expected[::3])
    monkeypatch.setattr(search, "SCORES_PER_PASS", 1)  # one query per pass: the passes join up in order
    assert_same_hits(index.search_many(queries, k=4), expected)
    embeddings = index.embeddings[:3]
    assert_same_hits(index.search_many(embeddings, k=1), [index.search(e, k=1) for e in embeddings])


def test_search_many_refuses_what_is_not_a_list_of_queries(index):
    with pytest.raises(TypeError, match="for one query use search"):
        index.search_many("a red circle")
    with pytest.raises(ValueError, match="no queries"):
        index.search_many([])
    with pytest.raises(ValueError, match=r"must be \[Q, "):
        index.search_many(torch.ones(2, 3, index.dim))


def test_float16_index_halves_memory_and_ranks_like_float32(bundle, images, index, tmp_path):
    half = ImageIndex.build(bundle, images, progress=False, dtype=torch.float16)
    assert half.embeddings.dtype == torch.float16 and "float16" in repr(half)
    assert half.embeddings.nbytes * 2 == index.embeddings.nbytes
    for query in ["a large red circle on the left", images[4]]:
        exact, approx = index.search(query, k=len(images)), half.search(query, k=len(images))
        assert [h.score for h in approx] == pytest.approx([h.score for h in exact], abs=2e-3)
    loaded = ImageIndex.load(half.save(tmp_path / "half.safetensors"), bundle)
    assert loaded.embeddings.dtype == torch.float16 and torch.equal(loaded.embeddings, half.embeddings)


def test_normalized_embeddings_are_shared_others_copied_and_bad_ones_refused():
    vectors = search.synthetic_embeddings(100, dim=8, seed=1)
    shared = ImageIndex(vectors, [str(i) for i in range(100)], "random").embeddings
    assert shared.data_ptr() == vectors.data_ptr()  # the same memory: no second gigabyte for a million
    raw = vectors.float() * 3.0
    index = ImageIndex(raw, [str(i) for i in range(100)], "random")
    assert torch.equal(raw, vectors.float() * 3.0)  # the caller's tensor is left alone
    assert index.embeddings.dtype == torch.float32
    assert torch.allclose(index.embeddings.norm(dim=1), torch.ones(100), atol=1e-5)
    ids = ["a", "b"]
    for bad, message in [
        (torch.tensor([[1.0, 0.0], [0.0, 0.0]]), "all zeros"),
        (torch.tensor([[1.0, float("nan")], [0.0, 1.0]]), "finite"),
        (torch.ones(2, 2, dtype=torch.long), "floating point"),
    ]:
        with pytest.raises(ValueError, match=message):
            ImageIndex(bad, ids, "random")
    with pytest.raises(ValueError, match="float32 or float16"):
        ImageIndex(torch.ones(2, 2), ids, "random", dtype=torch.bfloat16)


def test_synthetic_embeddings_are_unit_vectors_the_same_for_a_seed():
    vectors = search.synthetic_embeddings(70_000, dim=4, clusters=3, spread=0.1, seed=3)  # > one chunk
    assert vectors.shape == (70_000, 4) and vectors.dtype == torch.float16
    assert torch.allclose(vectors.float().norm(dim=1), torch.ones(70_000), atol=1e-3)
    assert torch.equal(vectors, search.synthetic_embeddings(70_000, dim=4, clusters=3, spread=0.1, seed=3))
    close = vectors[:300].float() @ vectors[:300].float().T > 0.9
    assert len(torch.unique(close, dim=0)) == 3  # every vector is close to exactly one of 3 groups
    with pytest.raises(ValueError, match="n, dim >= 1"):
        search.synthetic_embeddings(0)


def test_build_skips_a_decompression_bomb_and_objects_that_are_not_images(
    bundle, images, tmp_path, monkeypatch
):
    big = tmp_path / "big.png"
    Image.new("RGB", (300, 300)).save(big)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100 * 100 // 2)  # 300x300 is then over twice the limit
    index = ImageIndex.build(bundle, [images[0], big, 42], progress=False)
    assert index.ids == ["0"]
    reasons = dict(index.skipped)
    assert "too large to open safely" in reasons[str(big)]
    assert "got int" in reasons["2"]


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_approximate_search_of_a_float16_index(kind):
    vectors = search.synthetic_embeddings(3000, dim=32, clusters=30, spread=0.5, seed=4)
    index = ImageIndex(vectors[:2900], [str(i) for i in range(2900)], "random")
    approximate = index.approximate(kind)
    assert approximate.recall(vectors[2900:], k=10) > 0.9
    queries = vectors[2900:2902]
    assert_same_hits(approximate.search_many(queries, k=3), [approximate.search(v, k=3) for v in queries])


def test_approximate_search_without_faiss_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)  # what Python does when the package is missing
    index, _ = random_index(n=50)
    with pytest.raises(ModuleNotFoundError, match="pip install faiss-cpu"):
        index.approximate("ivf")
