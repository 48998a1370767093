"""Fashion-MNIST: find the four IDX files, check them, load them once into tensors, split them among clients.

Where the files are looked for (docs/design.md, "Data"): with ``data_dir`` given, there alone, downloading what is
missing into it; otherwise ``$FASHION_MNIST_DIR``, then ``data/`` in the project, then Debian's
``/usr/share/datasets/fashion-mnist``, downloading into ``data/`` when none has them.
"""

import splitlab  # noqa: F401  (the suite's process settings, which must precede torch)

import gzip
import os
import socket
from pathlib import Path

import numpy as np
import torch

PROJECT_DIR = Path(__file__).resolve().parent
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
HOW_TO_GET = (f"get them with 'apt-get install dataset-fashion-mnist' (they go to {DEBIAN_DIR}, found without "
              "--data-dir) or copy the four files (plain or .gz) into that folder")

# name -> (IDX magic number, shape of the data after the header)
FILES = {
    "train-images-idx3-ubyte": (0x00000803, (60000, 28, 28)),
    "train-labels-idx1-ubyte": (0x00000801, (60000,)),
    "t10k-images-idx3-ubyte": (0x00000803, (10000, 28, 28)),
    "t10k-labels-idx1-ubyte": (0x00000801, (10000,)),
}
NUM_CLASSES = 10
# Mean and standard deviation of the Fashion-MNIST training pixels in [0, 1]: inputs are standardised once.
MEAN, STD = 0.2860, 0.3530


class DataError(Exception):
    """The data set is missing or broken, or cannot be divided as asked; the message says what to do."""


def _file_in(directory, name):
    """The path of ``name`` or ``name.gz`` in ``directory``, or None."""
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _missing(directory):
    return [name for name in FILES if _file_in(directory, name) is None]


def _download(directory, names):
    """Fetch ``names`` into ``directory`` with torchvision; raise DataError naming the first that fails."""
    from torchvision.datasets import FashionMNIST
    from torchvision.datasets.utils import download_and_extract_archive

    checksums = dict(FashionMNIST.resources)
    socket.setdefaulttimeout(30)  # a closed network must fail, not hang
    for name in names:
        archive = f"{name}.gz"
        try:
            directory.mkdir(parents=True, exist_ok=True)
            download_and_extract_archive(FashionMNIST.mirrors[0] + archive, download_root=str(directory),
                                         filename=archive, md5=checksums[archive])
        except Exception as exc:
            raise DataError(f"Fashion-MNIST file(s) {', '.join(names)} missing from {directory}, and the download "
                            f"failed ({exc}); {HOW_TO_GET}") from None


def find_data_dir(data_dir=None):
    """The folder that holds all four files, downloading them where docs/design.md says to."""
    if data_dir is not None:
        directory = Path(data_dir)
        if _missing(directory):
            _download(directory, _missing(directory))
        return directory
    candidates = [Path(p) for p in [os.environ.get("FASHION_MNIST_DIR")] if p]
    candidates += [PROJECT_DIR / "data", DEBIAN_DIR]
    for directory in candidates:
        if not _missing(directory):
            return directory
    _download(PROJECT_DIR / "data", _missing(PROJECT_DIR / "data"))
    return PROJECT_DIR / "data"


def read_idx(path, magic, shape, count=None):
    """Read one IDX file, checking its magic number, dimensions and size; return a uint8 array of its first
    ``count`` items (all by default). Only what is returned is read: a gzip file's length is checked by the size
    its last 4 bytes record, and its checksum when it is read whole."""
    path = Path(path)
    header_len = 4 + 4 * len(shape)
    expected = header_len + int(np.prod(shape))
    wanted = header_len + min(shape[0] if count is None else count, shape[0]) * int(np.prod(shape[1:]))
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            raw = f.read() if count is None else f.read(wanted)
        # the whole file's size: what was read, or else what the file system or the gzip trailer says
        size = len(raw) if count is None else _gzip_size(path) if path.suffix == ".gz" else path.stat().st_size
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"cannot read {path}: {exc}; the file is damaged, delete it and {HOW_TO_GET}") from None
    if len(raw) < header_len:
        raise DataError(f"{path} is truncated ({len(raw)} bytes); delete it and {HOW_TO_GET}")
    header = np.frombuffer(raw[:header_len], dtype=">u4")
    if header[0] != magic:
        raise DataError(f"{path} is not an IDX file of the expected kind (magic number {header[0]:#010x}, "
                        f"expected {magic:#010x}); {HOW_TO_GET}")
    if tuple(header[1:]) != shape:
        raise DataError(f"{path} holds data of shape {tuple(int(d) for d in header[1:])}, expected {shape}; "
                        f"{HOW_TO_GET}")
    if size != expected or len(raw) != wanted:
        raise DataError(f"{path} has {size} bytes, expected {expected}: truncated or damaged; "
                        f"delete it and {HOW_TO_GET}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header_len).reshape(-1, *shape[1:])


def _gzip_size(path):
    """The size of the data in a gzip file, as its last 4 bytes record it (modulo 2**32)."""
    with open(path, "rb") as f:
        f.seek(-4, os.SEEK_END)
        return int.from_bytes(f.read(4), "little")


def _read_split(directory, split, subset):
    """Images (N, 28, 28) uint8, as in the file, and labels (N,) int64 of ``train`` or ``t10k``."""
    images_name, labels_name = f"{split}-images-idx3-ubyte", f"{split}-labels-idx1-ubyte"
    images = read_idx(_file_in(directory, images_name), *FILES[images_name], count=subset)
    labels = read_idx(_file_in(directory, labels_name), *FILES[labels_name], count=subset)
    if labels.max() >= NUM_CLASSES:
        raise DataError(f"{_file_in(directory, labels_name)} has label {labels.max()}, outside 0..9; {HOW_TO_GET}")
    return images, torch.from_numpy(labels.astype(np.int64))


def _standardise(images):
    """uint8 images (N, 28, 28) -> float32 (N, 1, 28, 28), standardised."""
    return torch.from_numpy(images.astype(np.float32)).div_(255).sub_(MEAN).div_(STD).unsqueeze(1)


def hold_out(train, test, validation, seed):
    """Move ``validation`` training images, drawn with ``seed`` (so the same for every method and rank of a run),
    in front of the test images: ``(train, evaluation)``, each a pair of images and labels. A method evaluates the
    validation images and then the test images in one pass, and ``Scores(validation)`` tells them apart."""
    if not validation:
        return train, test
    if validation >= len(train[1]):
        raise DataError(f"--validation {validation} would hold out every one of the {len(train[1])} training images; "
                        "hold out fewer")
    order = np.random.default_rng([seed, 1]).permutation(len(train[1]))  # a stream apart from the partition's
    kept, held = np.sort(order[validation:]), np.sort(order[:validation])
    (images, labels), (test_images, test_labels) = train, test
    return ((images[kept], labels[kept]),
            (np.concatenate([images[held], test_images]), torch.cat([labels[held], test_labels])))


def _read(directory, train_subset, test_subset, validation, seed):
    return hold_out(_read_split(directory, "train", train_subset), _read_split(directory, "t10k", test_subset),
                    validation, seed)


def load_fashion_mnist(data_dir=None, train_subset=None, test_subset=None, validation=0, seed=0):
    """``(x_train, y_train, x_eval, y_eval)`` as tensors; the subsets keep the first N images, and the evaluation
    set is the test set, after ``validation`` training images held out (``hold_out``)."""
    (train_images, y_train), (eval_images, y_eval) = _read(find_data_dir(data_dir), train_subset, test_subset,
                                                           validation, seed)
    return _standardise(train_images), y_train, _standardise(eval_images), y_eval


def load_shards(args, num_clients, clients=()):
    """What a rank of a method with clients loads: ``(shard_sizes, shards, (x_eval, y_eval))``, the size of every
    client's shard, ``{client: (x, y)}`` for ``clients`` (numbered from 1) and the evaluation set (``hold_out``).
    Only those clients' images are turned into floats: a rank holds its own clients' data, not the training set
    (issue 21)."""
    (train_images, train_labels), (eval_images, y_eval) = _read(find_data_dir(args.data_dir), args.train_subset,
                                                                args.test_subset, args.validation, args.seed)
    indices = partition(train_labels, num_clients, args.partition, args.alpha, args.seed)
    shards = {k: (_standardise(train_images[indices[k - 1].numpy()]), train_labels[indices[k - 1]]) for k in clients}
    return [len(i) for i in indices], shards, (_standardise(eval_images), y_eval)


def iid_partition(num_examples, num_clients, seed):
    """Split ``range(num_examples)`` at random into ``num_clients`` shards of equal size (within one)."""
    order = np.random.default_rng(seed).permutation(num_examples)
    return [torch.from_numpy(np.sort(shard)) for shard in np.array_split(order, num_clients)]


def dirichlet_partition(labels, num_clients, alpha, seed):
    """Non-IID split: each class is divided among clients in Dirichlet(alpha) proportions.

    Small ``alpha`` gives each client few classes; large ``alpha`` approaches the IID split. Draws again
    (deterministically) until every client has at least one example.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    for _ in range(100):
        shards = [[] for _ in range(num_clients)]
        for c in range(NUM_CLASSES):
            members = rng.permutation(np.flatnonzero(labels == c))
            cuts = (np.cumsum(rng.dirichlet([alpha] * num_clients))[:-1] * len(members)).astype(int)
            for shard, part in zip(shards, np.split(members, cuts)):
                shard.append(part)
        shards = [np.sort(np.concatenate(parts)) for parts in shards]
        if all(len(s) for s in shards):
            return [torch.from_numpy(s) for s in shards]
    raise DataError(f"100 Dirichlet draws with --alpha {alpha} each left one of the {num_clients} clients without "
                    f"training data ({len(labels)} images); use a larger --alpha, more images or fewer clients")


def partition(labels, num_clients, scheme="iid", alpha=0.5, seed=0):
    """Index tensors of each client's shard of the training set, by ``scheme`` (``iid`` or ``dirichlet``).
    Every client gets at least one example, or DataError says why not."""
    if num_clients > len(labels):
        raise DataError(f"{len(labels)} training images cannot give each of {num_clients} clients one; "
                        f"use more images (--train-subset) or fewer clients")
    if scheme == "iid":
        return iid_partition(len(labels), num_clients, seed)
    return dirichlet_partition(labels, num_clients, alpha, seed)


def shuffle_generator(seed, client=0):
    """The generator that shuffles data holder ``client``'s batches (regular learning is client 0)."""
    return torch.Generator().manual_seed(seed * 1000 + client)


def batches(x, y, batch_size, generator):
    """One epoch of shuffled mini-batches ``(x_batch, y_batch)``: one permutation, then slices. The permutation
    is drawn on the CPU (the same on every device) and moved to the images' and the labels' devices once, not an
    index per batch (a split client keeps its images on the GPU and its labels, which it sends, on the CPU)."""
    order = torch.randperm(len(y), generator=generator)
    x_order, y_order = order.to(x.device), order.to(y.device)
    for start in range(0, len(y), batch_size):
        yield x[x_order[start:start + batch_size]], y[y_order[start:start + batch_size]]


def num_batches(num_examples, batch_size):
    return -(-num_examples // batch_size)
