"""The user's own data through the CLI: per-sample files, label-free scores, --predict."""

import csv
import json

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from deepclust_cli.engine.checkpoint import load_checkpoint
from deepclust_cli.methods.base import ClusteringMethod

TINY_LNSCC = [
    "method=lnscc",
    "method.n_clusters=3",
    "method.epochs=4",
    "method.clustering_epoch=2",
    "method.hidden=[32]",
    "method.embedding_dim=4",
    "method.n_neighbors=10",
    "method.plot_every=0",
]


def rows_of(path):
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


@pytest.fixture
def blob_files(tmp_path):
    """A 240 × 8 CSV with a header and string labels in a named column; 90 new rows without labels."""
    x, y = make_blobs(330, n_features=8, centers=3, cluster_std=0.6, random_state=4)
    names = np.array(["ash", "birch", "cedar"])[y]
    train = tmp_path / "train.csv"
    with train.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow([f"f{j}" for j in range(8)] + ["species"])
        writer.writerows([*map(float, row), name] for row, name in zip(x[:240], names[:240]))
    new = tmp_path / "new.csv"
    np.savetxt(new, x[240:], delimiter=",", fmt="%.6f")
    new_labels = tmp_path / "new_labels.txt"
    new_labels.write_text("\n".join(names[240:]) + "\n")
    return train, new, new_labels, x, names


def test_a_labelled_run_writes_each_sample_s_cluster_label_embedding_and_centers(deepclust, blob_files):
    train, _, _, x, names = blob_files
    result = deepclust("method=kmeans", "dataset=features", f"dataset.path={train}", "dataset.label_column=species")
    assert result.code == 0, result.err
    session = result.session()
    rows = rows_of(session / "predictions" / "all.csv")
    assert list(rows[0]) == ["index", "cluster", "label"]
    assert [int(r["index"]) for r in rows] == list(range(240))
    assert [r["label"] for r in rows] == names[:240].tolist()  # class names, in the file's order
    model = ClusteringMethod.load(session / "checkpoints" / "last.ckpt")
    assert [int(r["cluster"]) for r in rows] == model.labels_.tolist() == model.predict(x[:240]).tolist()
    embedding = np.load(session / "predictions" / "all_embedding.npy")
    assert embedding.dtype == np.float32 and embedding.shape == (240, 8)
    np.testing.assert_allclose(embedding, x[:240], rtol=1e-5)  # k-means assigns in the input space
    np.testing.assert_allclose(np.load(session / "predictions" / "centers.npy"), model.cluster_centers_, rtol=1e-6)
    metrics = json.loads((session / "metrics.json").read_text())
    assert metrics["acc"] == 1.0 and sum(metrics["cluster_sizes"]) == 240 and metrics["silhouette"] > 0.5


def test_an_unlabelled_run_has_no_label_column_but_label_free_scores(deepclust, blob_files, tmp_path):
    _, new, _, x, _ = blob_files
    result = deepclust(*TINY_LNSCC, "dataset=features", f"dataset.path={new}")
    assert result.code == 0, result.err
    session = result.session()
    rows = rows_of(session / "predictions" / "all.csv")
    assert list(rows[0]) == ["index", "cluster", "confidence"]  # LNSCC's soft assignments give a confidence
    assert len(rows) == 90 and all(0 < float(r["confidence"]) <= 1 for r in rows)
    metrics = json.loads((session / "metrics.json").read_text())
    assert "acc" not in metrics
    assert {"silhouette", "davies_bouldin", "calinski_harabasz", "size_entropy", "largest_cluster"} <= set(metrics)
    assert np.load(session / "predictions" / "all_embedding.npy").shape == (90, 4)


def test_predict_labels_a_file_the_model_never_saw_as_the_library_does(deepclust, blob_files, tmp_path):
    train, new, new_labels, x, names = blob_files
    trained = deepclust(*TINY_LNSCC, "dataset=features", f"dataset.path={train}", "dataset.label_column=species")
    assert trained.code == 0, trained.err
    checkpoint = trained.session() / "checkpoints" / "last.ckpt"
    before = {p: p.stat().st_mtime_ns for p in trained.session().rglob("*") if p.is_file()}

    unlabelled = deepclust("--resume", str(checkpoint), "--predict", f"dataset.path={new}", "dataset.label_column=null")
    assert unlabelled.code == 0, unlabelled.err
    session = unlabelled.session()
    assert session != trained.session() and session.parent == trained.session().parent
    rows = rows_of(session / "predictions" / "all.csv")
    expected = ClusteringMethod.load(checkpoint).predict(x[240:])
    assert [int(r["cluster"]) for r in rows] == expected.tolist()
    assert "label" not in rows[0] and "acc" not in json.loads((session / "metrics.json").read_text())
    assert json.loads((session / "run.json").read_text())["mode"] == "predict"
    assert not (session / "checkpoints").exists() or not any((session / "checkpoints").iterdir())  # trains nothing

    labelled = deepclust(
        "--resume", str(checkpoint), "--predict", f"dataset.path={new}", "dataset.label_column=null", f"dataset.labels={new_labels}"
    )
    assert labelled.code == 0, labelled.err
    metrics = json.loads((labelled.session() / "metrics.json").read_text())
    assert metrics["acc"] > 0.9
    assert [r["label"] for r in rows_of(labelled.session() / "predictions" / "all.csv")] == names[240:].tolist()
    assert before == {p: p.stat().st_mtime_ns for p in trained.session().rglob("*") if p.is_file()}  # the trained session untouched


def test_joined_splits_name_the_split_of_each_sample(deepclust, tmp_path):
    x, y = make_blobs(150, n_features=3, centers=3, random_state=0)
    np.save(tmp_path / "a.npy", x[:100])
    np.save(tmp_path / "b.npy", x[100:])
    result = deepclust(
        "method=kmeans", "method.n_clusters=3", "dataset=features", f"dataset.path={tmp_path / 'a.npy'}",
        f"dataset.test_path={tmp_path / 'b.npy'}", "dataset.split=all", "dataset.max_samples=80",
    )
    assert result.code == 0, result.err
    rows = rows_of(result.session() / "predictions" / "all.csv")
    assert list(rows[0])[:2] == ["split", "index"] and len(rows) == 130  # 80 of a.npy's 100, all 50 of b.npy
    assert [r["split"] for r in rows] == ["train"] * 80 + ["test"] * 50
    assert [int(r["index"]) for r in rows[80:]] == list(range(50))
    train_rows = [int(r["index"]) for r in rows[:80]]
    assert train_rows == sorted(train_rows) and max(train_rows) < 100 and len(set(train_rows)) == 80  # rows of a.npy kept


def test_predict_needs_a_checkpoint_and_refuses_test_only(deepclust, blob_files):
    train, new, _, _, _ = blob_files
    trained = deepclust("method=kmeans", "method.n_clusters=3", "dataset=features", f"dataset.path={new}")
    checkpoint = trained.session() / "checkpoints" / "last.ckpt"
    both = deepclust("--resume", str(checkpoint), "--predict", "--test-only")
    assert both.code == 2 and "cannot be combined" in both.err
    alone = deepclust("--predict", "dataset=features", f"dataset.path={new}")
    assert alone.code == 2 and "predict needs a trained checkpoint" in alone.err


def test_a_header_s_names_and_the_label_names_are_kept_in_the_session(deepclust, blob_files):
    train, _, _, _, _ = blob_files
    result = deepclust("method=kmeans", "dataset=features", f"dataset.path={train}", "dataset.label_column=species")
    assert result.code == 0, result.err
    info = json.loads((result.session() / "dataset.json").read_text())
    assert info["features"] == [f"f{j}" for j in range(8)] and info["classes"] == ["ash", "birch", "cedar"]
    assert info["train"] == 240 and info["test"] is None


def test_an_npz_with_a_labels_array(deepclust, tmp_path):
    x, y = make_blobs(120, n_features=4, centers=3, random_state=1)
    np.savez(tmp_path / "data.npz", embeddings=x.astype(np.float32), y=y)
    result = deepclust("method=kmeans", "dataset=features", f"dataset.path={tmp_path / 'data.npz'}", "dataset.label_column=y")
    assert result.code == 0, result.err
    assert json.loads((result.session() / "metrics.json").read_text())["acc"] == 1.0
    np.savez(tmp_path / "two.npz", a=x, b=x)
    ambiguous = deepclust("method=kmeans", "method.n_clusters=3", "dataset=features", f"dataset.path={tmp_path / 'two.npz'}")
    assert ambiguous.code != 0 and "name the features with dataset.key" in ambiguous.err


def test_standardize_uses_the_fitted_statistics_and_predict_applies_the_checkpoint_s(deepclust, tmp_path):
    x, _ = make_blobs(200, n_features=3, centers=2, random_state=3)
    x = x * np.array([1.0, 100.0, 0.01]) + 50.0  # features on very different scales
    np.save(tmp_path / "x.npy", x)
    trained = deepclust("method=kmeans", "method.n_clusters=2", "dataset=features", f"dataset.path={tmp_path / 'x.npy'}", "dataset.standardize=true")
    assert trained.code == 0, trained.err
    session = trained.session()
    embedding = np.load(session / "predictions" / "all_embedding.npy")
    np.testing.assert_allclose(embedding.mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(embedding.std(axis=0), 1, atol=1e-4)
    state = load_checkpoint(session / "checkpoints" / "last.ckpt")["data"]["standardize"]
    np.testing.assert_allclose(state["mean"].numpy(), x.mean(axis=0), rtol=1e-5)
    np.save(tmp_path / "new.npy", x[:50] + 1.0)
    predicted = deepclust("--resume", str(session / "checkpoints" / "last.ckpt"), "--predict", f"dataset.path={tmp_path / 'new.npy'}")
    assert predicted.code == 0, predicted.err
    new_embedding = np.load(predicted.session() / "predictions" / "all_embedding.npy")
    np.testing.assert_allclose(new_embedding, ((x[:50] + 1.0) - x.mean(axis=0)) / x.std(axis=0), rtol=1e-4, atol=1e-4)


def test_a_flat_folder_of_images_is_an_unlabelled_dataset_named_by_path(deepclust, tmp_path):
    import PIL.Image

    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(12):
        pixels = np.zeros((10, 10, 3), np.uint8)
        pixels[..., i % 2] = 220
        PIL.Image.fromarray(pixels).save(folder / f"p{i:02d}.png")
    (folder / "notes.txt").write_text("not an image")
    result = deepclust("method=kmeans", "method.n_clusters=2", "dataset=images", f"dataset.path={folder}", "dataset.image_size=8")
    assert result.code == 0, result.err
    rows = rows_of(result.session() / "predictions" / "all.csv")
    assert [r["path"] for r in rows] == [str(folder / f"p{i:02d}.png") for i in range(12)]
    clusters = [int(r["cluster"]) for r in rows]
    assert clusters[0::2] == [clusters[0]] * 6 and clusters[1::2] == [1 - clusters[0]] * 6  # red apart from green
    assert (result.session() / "plots" / "clusters.png").stat().st_size > 1000
    unlabelled = deepclust("method=kmeans", "dataset=images", f"dataset.path={folder}")
    assert unlabelled.code == 2 and "set method.n_clusters" in unlabelled.err


def test_a_collapsed_clustering_says_so_in_the_log(deepclust, tmp_path):
    x = np.random.default_rng(0).normal(size=(300, 2))
    x[0] = 1000.0  # one far outlier: two k-means clusters are it and everything else
    np.save(tmp_path / "x.npy", x)
    result = deepclust("method=kmeans", "method.n_clusters=2", "dataset=features", f"dataset.path={tmp_path / 'x.npy'}")
    assert result.code == 0, result.err
    log = (result.session() / "log.txt").read_text()
    assert "the clusters collapsed: one holds 99.7% of the 300 samples (2 of 2 clusters used)" in log
    assert json.loads((result.session() / "metrics.json").read_text())["cluster_sizes"] in ([1, 299], [299, 1])
