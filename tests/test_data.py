"""Data validation, partitioning and batching."""

import gzip
import json
import struct

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import data
from conftest import PINNED, in_process, needs_data, results_in_one_job


def write_idx(path, magic, shape, payload=None, compress=False):
    payload = bytes(int(np.prod(shape))) if payload is None else payload
    raw = struct.pack(f">I{len(shape)}I", magic, *shape) + payload
    (gzip.open if compress else open)(path, "wb").write(raw)
    return path


# ---------------------------------------------------------------------------------------------- validation

def test_reads_a_valid_file(tmp_path):
    labels = bytes(range(10)) * 3
    path = write_idx(tmp_path / "l.gz", 0x801, (30,), labels, compress=True)
    assert data.read_idx(path, 0x801, (30,)).tolist() == list(range(10)) * 3


def test_bad_magic_number_is_named(tmp_path):
    path = write_idx(tmp_path / "x", 0x803, (30,))
    with pytest.raises(data.DataError, match="magic number 0x00000803, expected 0x00000801"):
        data.read_idx(path, 0x801, (30,))


def test_wrong_item_count_is_named(tmp_path):
    path = write_idx(tmp_path / "x", 0x801, (29,))
    with pytest.raises(data.DataError, match=r"shape \(29,\), expected \(30,\)"):
        data.read_idx(path, 0x801, (30,))


def test_truncated_file_is_named(tmp_path):
    path = write_idx(tmp_path / "short", 0x801, (30,), bytes(20))
    with pytest.raises(data.DataError, match="short.*truncated"):
        data.read_idx(path, 0x801, (30,))
    path.write_bytes(path.read_bytes()[:5])  # not even its header
    with pytest.raises(data.DataError, match=r"short is truncated \(5 bytes\)"):
        data.read_idx(path, 0x801, (30,))


def test_a_gzip_file_read_whole_has_its_checksum_checked(tmp_path):
    good = write_idx(tmp_path / "g.gz", 0x801, (300,), bytes(range(10)) * 30, compress=True).read_bytes()
    wrong = tmp_path / "wrong.gz"
    wrong.write_bytes(good[:-8] + bytes([good[-8] ^ 1]) + good[-7:])  # the CRC-32 in its trailer, one bit off
    with pytest.raises(data.DataError, match="wrong.gz.*damaged"):
        data.read_idx(wrong, 0x801, (300,))


def test_damaged_gzip_is_named(tmp_path):
    good = write_idx(tmp_path / "g.gz", 0x801, (3000,), bytes(range(10)) * 300, compress=True)
    broken = tmp_path / "broken.gz"
    broken.write_bytes(good.read_bytes()[:-40])
    with pytest.raises(data.DataError, match="broken.gz"):
        data.read_idx(broken, 0x801, (3000,))


@pytest.mark.parametrize("compress", [False, True])
def test_a_part_is_read_alone_and_a_truncated_file_is_refused_even_so(tmp_path, compress):
    labels = bytes(range(10)) * 300
    whole = write_idx(tmp_path / ("l.gz" if compress else "l"), 0x801, (3000,), labels, compress=compress)
    assert data.read_idx(whole, 0x801, (3000,), count=25).tolist() == list(labels[:25])
    assert data.read_idx(whole, 0x801, (3000,), count=5000).tolist() == list(labels)
    cut = write_idx(tmp_path / ("c.gz" if compress else "c"), 0x801, (3000,), labels[:2000], compress=compress)
    with pytest.raises(data.DataError, match="truncated or damaged"):
        data.read_idx(cut, 0x801, (3000,), count=25)


def test_labels_outside_range_are_refused(tmp_path):
    for name, (magic, shape) in data.FILES.items():
        write_idx(tmp_path / name, magic, shape, None if "labels" not in name else bytes([11]) * shape[0])
    with pytest.raises(data.DataError, match="label 11"):
        data.load_fashion_mnist(tmp_path)


@needs_data
def test_loads_fashion_mnist_standardised():
    x_train, y_train, x_test, y_test = data.load_fashion_mnist(train_subset=6000, test_subset=1000)
    assert x_train.shape == (6000, 1, 28, 28) and x_train.dtype == torch.float32
    assert y_train.shape == (6000,) and y_train.dtype == torch.int64
    assert x_test.shape == (1000, 1, 28, 28) and y_test.shape == (1000,)
    assert abs(x_train.mean().item()) < 0.05 and abs(x_train.std().item() - 1) < 0.05
    assert set(y_train.tolist()) == set(range(10))


# -------------------------------------------------------------------------------------------- partitioning

def test_iid_shards_are_disjoint_equal_and_cover_everything():
    shards = data.iid_partition(1003, 10, seed=0)
    together = torch.cat(shards)
    assert sorted(together.tolist()) == list(range(1003))
    assert {len(s) for s in shards} == {100, 101}


def test_same_seed_same_shards_other_seed_other_shards():
    labels = np.random.default_rng(0).integers(0, 10, 2000)
    for scheme in ("iid", "dirichlet"):
        a = data.partition(labels, 5, scheme, alpha=0.3, seed=1)
        b = data.partition(labels, 5, scheme, alpha=0.3, seed=1)
        c = data.partition(labels, 5, scheme, alpha=0.3, seed=2)
        assert all(torch.equal(x, y) for x, y in zip(a, b))
        assert not all(torch.equal(x, y) for x, y in zip(a, c))


def test_dirichlet_shards_cover_everything_and_are_skewed():
    labels = np.repeat(np.arange(10), 600)
    shards = data.dirichlet_partition(labels, 10, alpha=0.1, seed=0)
    assert sorted(torch.cat(shards).tolist()) == list(range(6000))
    # With alpha = 0.1 a typical client holds most of its data in one or two classes; IID would give ~10 %.
    top_share = [np.bincount(labels[s.numpy()], minlength=10).max() / len(s) for s in shards]
    assert np.median(top_share) > 0.5
    iid_top = [np.bincount(labels[s.numpy()], minlength=10).max() / len(s)
               for s in data.iid_partition(6000, 10, seed=0)]
    assert max(iid_top) < 0.2


def test_one_client_gets_everything_in_order():
    assert torch.equal(data.iid_partition(50, 1, seed=4)[0], torch.arange(50))


# ------------------------------------------------------------------------------------------------ batching

def test_batches_cover_the_epoch_once_in_a_seeded_order():
    x = torch.arange(10).float().reshape(10, 1)
    y = torch.arange(10)
    first = list(data.batches(x, y, 4, data.shuffle_generator(0)))
    assert [len(b[1]) for b in first] == [4, 4, 2]
    assert sorted(torch.cat([b[1] for b in first]).tolist()) == list(range(10))
    assert all(torch.equal(bx.squeeze(1).long(), by) for bx, by in first)  # images stay with their labels
    again = list(data.batches(x, y, 4, data.shuffle_generator(0)))
    assert all(torch.equal(a[1], b[1]) for a, b in zip(first, again))
    assert data.num_batches(10, 4) == 3


def test_images_and_labels_on_different_devices_are_batched_alike():
    # A split client's images are on the GPU, its labels on the CPU (found on a GPU: the labels were indexed with
    # the images' device). The meta device stands in for the GPU here.
    x, y = torch.zeros(10, 1), torch.arange(10)
    on_cpu = list(data.batches(x, y, 4, data.shuffle_generator(0)))
    apart = list(data.batches(x.to("meta"), y, 4, data.shuffle_generator(0)))
    assert all(bx.device.type == "meta" and torch.equal(by, cpu_y) for (bx, by), (_, cpu_y) in zip(apart, on_cpu))


# ------------------------------------------------------------------------------------- non-IID, end to end

DIRICHLET = ["--train-subset", "600", "--test-subset", "300", "--epochs", "1", "--no-progress",
             "--partition", "dirichlet", "--alpha", "0.5", "--clients", "3"]  # 3 clients on 1 client rank
DIRICHLET_RUNS = {"split": ["split_learning.py"], "sflv2": ["split_learning.py", "--variant", "sflv2"],
                  "sync-sgd": ["sync_sgd.py"], "fedavg": ["federated_learning.py"]}


@pytest.fixture(scope="module")
def dirichlet_runs(tmp_path_factory):
    """The results of every method of DIRICHLET_RUNS with Dirichlet shards, by name, pinned threads: made in one MPI
    job on the module's first use."""
    return results_in_one_job(2, {name: [*command, *DIRICHLET] for name, command in DIRICHLET_RUNS.items()},
                              tmp_path_factory.mktemp("dirichlet"), timeout=600, env=PINNED)


@needs_data
@pytest.mark.parametrize("name", DIRICHLET_RUNS)
def test_every_method_trains_each_client_on_its_dirichlet_shard(tmp_path, name, dirichlet_runs):
    from data import load_fashion_mnist, partition
    saved = dirichlet_runs[name]
    labels = load_fashion_mnist(train_subset=600, test_subset=1)[1]
    expected = [len(s) for s in partition(labels, 3, "dirichlet", 0.5, 0)]
    assert saved["shard_sizes"] == expected and len(set(expected)) == 3  # unequal shards, each where it belongs
    if name == "fedavg":  # weighted by those sizes, as one process weights them
        one = in_process("federated_learning.py", *DIRICHLET, "--results-dir", str(tmp_path), env=PINNED)
        assert one.returncode == 0, one.stderr
        one_run = json.loads((tmp_path / "federated.json").read_text())
        assert one_run["shard_sizes"] == expected
        assert saved["epochs"][0]["test_loss"] == pytest.approx(one_run["epochs"][0]["test_loss"], abs=1e-4)


# ---------------------------------------------------------------------------------- where the files are looked for

@pytest.fixture
def places(tmp_path, monkeypatch):
    """Empty folders in place of $FASHION_MNIST_DIR, ./data and Debian's, and a download that records its call."""
    folders = {name: tmp_path / name for name in ("env", "project", "debian", "given")}
    for folder in folders.values():
        folder.mkdir()
    (folders["project"] / "data").mkdir()
    monkeypatch.setenv("FASHION_MNIST_DIR", str(folders["env"]))
    monkeypatch.setattr(data, "PROJECT_DIR", folders["project"])
    monkeypatch.setattr(data, "DEBIAN_DIR", folders["debian"])
    downloads = []
    monkeypatch.setattr(data, "_download", lambda directory, names: downloads.append((directory, sorted(names))))
    return folders, downloads


def fill(folder, gz=(), leave_out=()):
    for name in data.FILES:
        if name not in leave_out:
            (folder / (f"{name}.gz" if name in gz else name)).write_bytes(b"")


def test_the_first_folder_with_all_four_files_is_used_in_the_documented_order(places):
    folders, downloads = places
    fill(folders["debian"])
    assert data.find_data_dir() == folders["debian"]
    fill(folders["project"] / "data", gz=list(data.FILES)[:2])  # gzipped files count
    assert data.find_data_dir() == folders["project"] / "data"
    fill(folders["env"], leave_out=list(data.FILES)[-1:])  # three of four: passed over
    assert data.find_data_dir() == folders["project"] / "data"
    fill(folders["env"])
    assert data.find_data_dir() == folders["env"] and downloads == []


def test_missing_files_are_downloaded_into_the_named_folder_or_the_projects(places):
    folders, downloads = places
    assert data.find_data_dir() == folders["project"] / "data"
    assert downloads == [(folders["project"] / "data", sorted(data.FILES))]
    fill(folders["given"], leave_out=list(data.FILES)[:1])
    assert data.find_data_dir(folders["given"]) == folders["given"]
    assert downloads[1] == (folders["given"], list(data.FILES)[:1])  # only what is missing


@given(examples=st.integers(1, 3000), clients=st.integers(1, 50), seed=st.integers(0, 2**32 - 1))
def test_an_iid_partition_covers_each_image_once_in_shards_equal_within_one(examples, clients, seed):
    if clients > examples:
        with pytest.raises(data.DataError, match=f"cannot give each of {clients} clients one"):
            data.partition(np.zeros(examples), clients, "iid", seed=seed)
        return
    shards = data.partition(np.zeros(examples), clients, "iid", seed=seed)
    assert len(shards) == clients and sorted(torch.cat(shards).tolist()) == list(range(examples))
    assert max(map(len, shards)) - min(map(len, shards)) <= 1
    assert all(torch.equal(s, torch.sort(s).values) for s in shards)  # each shard in image order


@given(clients=st.integers(1, 8), alpha=st.floats(0.3, 100), seed=st.integers(0, 1000))
def test_a_dirichlet_partition_covers_each_image_once_and_gives_every_client_some(clients, alpha, seed):
    labels = np.repeat(np.arange(10), 30)
    shards = data.partition(labels, clients, "dirichlet", alpha=alpha, seed=seed)
    assert len(shards) == clients and sorted(torch.cat(shards).tolist()) == list(range(len(labels)))
    assert min(map(len, shards)) >= 1


# ------------------------------------------------------------------------ loading, on a data set made up here

@pytest.fixture
def numbered(tmp_path):
    """Fashion-MNIST's four files, full size, where image i's first pixel is i % 251 and its label i % 10."""
    for name, (magic, shape) in data.FILES.items():
        if "labels" in name:
            payload = (np.arange(shape[0]) % 10).astype(np.uint8).tobytes()
        else:
            images = np.zeros(shape, dtype=np.uint8)
            images[:, 0, 0] = np.arange(shape[0]) % 251
            payload = images.tobytes()
        write_idx(tmp_path / name, magic, shape, payload)
    return tmp_path


def test_a_rank_loads_its_own_clients_shards_standardised_and_every_shards_size(numbered):
    import argparse
    args = argparse.Namespace(data_dir=numbered, train_subset=100, test_subset=20, partition="iid", alpha=0.5, seed=3,
                              validation=0)
    sizes, shards, (x_test, y_test) = data.load_shards(args, 4, clients=(2, 3))
    assert sizes == [25] * 4 and sorted(shards) == [2, 3]
    indices = data.partition(np.arange(100) % 10, 4, "iid", seed=3)
    for k, (x, y) in shards.items():
        first_pixel = torch.round((x[:, 0, 0, 0] * data.STD + data.MEAN) * 255).long()
        assert first_pixel.tolist() == (indices[k - 1] % 251).tolist()
        assert y.tolist() == (indices[k - 1] % 10).tolist()
        assert x.shape == (25, 1, 28, 28) and x.dtype == torch.float32
        black = x[:, 0, 1:, :]  # a black pixel, standardised
        assert torch.allclose(black, torch.full_like(black, -data.MEAN / data.STD))
    assert x_test.shape == (20, 1, 28, 28) and y_test.tolist() == [i % 10 for i in range(20)]
    x_train, y_train, x_all, _ = data.load_fashion_mnist(numbered, train_subset=30)
    assert len(y_train) == 30 and len(x_all) == 10000 and y_train.dtype == torch.int64


def first_pixels(x):
    """The images' numbers in the ``numbered`` files (below 251)."""
    return torch.round((x[:, 0, 0, 0] * data.STD + data.MEAN) * 255).long().tolist()


def test_validation_images_are_training_images_that_no_client_holds_the_same_for_every_method(numbered):
    import argparse
    args = argparse.Namespace(data_dir=numbered, train_subset=200, test_subset=20, partition="iid", alpha=0.5, seed=3,
                              validation=40)
    sizes, shards, (x_eval, y_eval) = data.load_shards(args, 4, clients=(1, 2, 3, 4))
    held, trained = first_pixels(x_eval[:40]), [i for x, _ in shards.values() for i in first_pixels(x)]
    assert sizes == [40] * 4 and sorted(held + trained) == list(range(200))  # (under 251: first pixel = number)
    assert y_eval[:40].tolist() == [i % 10 for i in held]
    assert first_pixels(x_eval[40:]) == list(range(20)) and y_eval[40:].tolist() == [i % 10 for i in range(20)]
    x_train, _, x_regular, _ = data.load_fashion_mnist(numbered, 200, 20, validation=40, seed=3)  # regular learning
    assert torch.equal(x_regular, x_eval) and sorted(first_pixels(x_train)) == sorted(trained)
    other_seed = data.load_shards(argparse.Namespace(**{**vars(args), "seed": 4}), 4)[2][0]
    assert first_pixels(other_seed[:40]) != held
    with pytest.raises(data.DataError, match="--validation 200 would hold out every one of the 200"):
        data.load_shards(argparse.Namespace(**{**vars(args), "validation": 200}), 4)


def test_a_download_asks_torchvision_for_each_missing_archive_with_its_checksum(tmp_path, monkeypatch):
    from torchvision.datasets import FashionMNIST, utils
    fetched = []
    monkeypatch.setattr(utils, "download_and_extract_archive", lambda url, download_root, filename, md5: fetched.append(
        (url, download_root, filename, md5)))
    data._download(tmp_path / "new", ["t10k-labels-idx1-ubyte"])
    archive = "t10k-labels-idx1-ubyte.gz"
    assert fetched == [(FashionMNIST.mirrors[0] + archive, str(tmp_path / "new"), archive,
                        dict(FashionMNIST.resources)[archive])]
    def offline(*args, **kwargs):
        raise OSError("offline")
    monkeypatch.setattr(utils, "download_and_extract_archive", offline)
    with pytest.raises(data.DataError, match="t10k-labels-idx1-ubyte missing from .*offline"):
        data._download(tmp_path / "new", ["t10k-labels-idx1-ubyte"])
