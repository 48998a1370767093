"""What crosses the wire compressed (splitlab/training/codec.py): each codec within its stated error, top-k keeping
exactly the largest entries, the bytes a run counts equal to the closed form for every codec and variant, the same
numbers on any placement, local-loss split learning sending no gradient and training its client on its own loss,
and FedAvg averaging the dequantised updates."""

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from conftest import PINNED, in_process, mpirun, needs_data, results_in_one_job
from models import cut_shape, head_shape, split
from splitlab.costs.traffic import fedavg_round_bytes, row_bytes, split_epoch_bytes
from splitlab.training import codec

# ------------------------------------------------------------------------------------------- the codecs

finite = st.floats(allow_nan=False, allow_infinity=False, width=32)
rows = hnp.arrays(np.float32, hnp.array_shapes(min_dims=2, max_dims=4, min_side=1, max_side=9),
                  elements=st.one_of(finite, st.just(0.0), st.floats(-1, 1, width=32)))


def round_trip(name, x):
    tensor = torch.from_numpy(x)
    chosen = codec.codec(name)
    packed = chosen.encode(tensor)
    assert packed.nbytes == len(x) * row_bytes(name, x[0].size)  # the closed form's row, from its own formula
    return chosen.decode(packed, tensor.shape).numpy()


@settings(max_examples=150, deadline=None)
@given(rows, st.sampled_from(["int8", "int4"]))
def test_quantised_rows_are_within_half_a_step(x, name):
    decoded = round_trip(name, x)
    flat, got = x.reshape(len(x), -1).astype(np.float64), decoded.reshape(len(x), -1).astype(np.float64)
    lo, hi = flat.min(1, keepdims=True), flat.max(1, keepdims=True)
    half_step = (hi - lo) / (2 * (2 ** int(name[3:]) - 1))
    rounding = (np.abs(flat) + half_step) * 2.0 ** -23 + 1e-44  # the decoded value is a float32
    assert np.all(np.abs(got - flat) <= half_step + rounding)


@settings(max_examples=150, deadline=None)
@given(rows, st.sampled_from([0.01, 0.1, 0.5, 0.99]))
def test_top_k_keeps_exactly_the_largest_entries(x, share):
    decoded = round_trip(f"topk:{share:g}", x)
    flat, got = x.reshape(len(x), -1), decoded.reshape(len(x), -1)
    k = max(1, math.ceil(share * flat.shape[1]))
    for row, kept in zip(flat, got):
        nonzero = kept != 0
        assert nonzero.sum() <= k and np.array_equal(kept[nonzero], row[nonzero])  # kept entries exact
        dropped = np.abs(row[~nonzero & (row != 0)])
        # k entries kept: as many as k of the row's nonzero values, none smaller than a value left out
        assert nonzero.sum() == min(k, np.count_nonzero(row))
        if dropped.size and nonzero.any():
            assert np.abs(kept[nonzero]).min() >= dropped.max()


@given(rows)
@settings(max_examples=50, deadline=None)
def test_none_is_the_float32_values_themselves(x):
    assert np.array_equal(round_trip("none", x), x)


def test_int4_packs_two_codes_a_byte_an_odd_row_padded():
    x = torch.tensor([[0.0, 1.0, 2.0, 15.0, 7.0]])  # steps of 1 between 0 and 15: every code exact
    packed = codec.codec("int4").encode(x)
    assert packed.nbytes == 8 + 3
    assert list(packed[8:]) == [0 | 1 << 4, 2 | 15 << 4, 7]
    assert codec.codec("int4").decode(packed, x.shape).tolist() == x.tolist()


@pytest.mark.parametrize("text", ["topk:0", "topk:1.5", "topk:1", "topk:x", "int3", "int16", "fp8", "bottleneck:0",
                                  "bottleneck:x", "int8+int4", "bottleneck:2+bottleneck:1", ""])
def test_a_spec_not_of_the_accepted_forms_is_refused(text):
    with pytest.raises(codec.SpecError, match="accepted"):
        codec.parse(text)


def test_specs_parse_to_a_bottleneck_and_a_codec():
    assert codec.parse("none") == (None, "none")
    assert codec.parse("topk:0.10") == (None, "topk:0.1")
    assert codec.parse("bottleneck:2+int4") == (2, "int4")
    assert codec.parse("bottleneck:3") == (3, "none")
    with pytest.raises(codec.SpecError):  # a FedAvg update has no cut to put a bottleneck at
        codec.parse("bottleneck:2", learned=False)


def test_a_models_tensors_round_trip_each_as_a_row():
    tensors = [torch.randn(6, 1, 5, 5), torch.zeros(6), torch.randn(120, 400) * 1e-4]
    sizes = [t.numel() for t in tensors]
    for name in ["none", "int8", "topk:0.25"]:
        chosen = codec.codec(name)
        packed = codec.encode_tensors(chosen, tensors)
        assert packed.nbytes == codec.tensors_bytes(chosen, sizes) == sum(row_bytes(name, n) for n in sizes)
        flat = codec.decode_tensors(chosen, packed, sizes)
        for got, want in zip(flat.split(sizes), tensors):  # each tensor's own scale: the small one survives
            assert torch.allclose(got.reshape(want.shape), want, atol=(want.abs().max() + 1e-30) / 200) or \
                name == "topk:0.25"


# ------------------------------------------------------------------------------- runs: bytes and numbers

SMALL = ["--train-subset", "600", "--test-subset", "300", "--patience", "0", "--no-progress", "--epochs", "1"]
CODED_RUNS = {  # name: (variant, cut, --compress, --compress-grad)
    "vanilla-int8": ("vanilla", 1, "int8", None),
    "vanilla-int4-grad-none": ("vanilla", 2, "int4", "none"),
    "vanilla-topk": ("vanilla", 1, "topk:0.05", None),
    "vanilla-bottleneck": ("vanilla", 1, "bottleneck:2+int4", None),
    "u-shaped-int8": ("u-shaped", 1, "int8", "int4"),
    "sflv1-topk": ("sflv1", 1, "topk:0.1", None),
    "sflv2-int4": ("sflv2", 2, "int4", None),
    "local-loss-int8": ("local-loss", 1, "int8", None),
    "local-loss-none": ("local-loss", 2, "none", None),
}


@pytest.fixture(scope="module")
def coded(tmp_path_factory):
    runs = {name: ["split_learning.py", *SMALL, "--clients", "2", "--variant", variant, "--cut-layer", str(cut), "--compress", spec,
                   *(["--compress-grad", grad] if grad else [])]
            for name, (variant, cut, spec, grad) in CODED_RUNS.items()}
    return results_in_one_job(2, runs, tmp_path_factory.mktemp("coded"), timeout=600, env=PINNED)


def closed_form(variant, cut, spec, grad):
    bottleneck, name = codec.parse(spec)
    grad_name = name if grad is None else grad
    client_part = split("lenet5", cut, 0, bottleneck)[0]
    return split_epoch_bytes(variant, 600, 300, 2, c=math.prod(cut_shape("lenet5", cut, bottleneck)),
                             p=sum(p.numel() for p in client_part.parameters()), h=head_shape("lenet5", 1)[0],
                             codec=name, grad_codec=grad_name)


@needs_data
@pytest.mark.parametrize("name", CODED_RUNS)
def test_the_bytes_a_coded_run_counts_are_the_closed_form(coded, name):
    """Every array is a term of the formula; what is left is the JSON control messages (under 4 kB for the
    epoch's two clients), while the codecs differ by hundreds of kB."""
    epoch = coded[name]["epochs"][0]
    formula = closed_form(*CODED_RUNS[name])
    assert 0 <= epoch["bytes_sent"] - formula < 4000
    assert epoch["bytes_sent"] == pytest.approx(epoch["bytes_received"], abs=4000)
    assert coded[name]["status"] == "completed" and math.isfinite(epoch["test_loss"])


@needs_data
def test_a_bottleneck_sends_its_channels_and_local_loss_gets_no_gradient(coded):
    received = {r["tag"]: r["shape_per_example"] for r in coded["vanilla-bottleneck"]["server_received"]}
    assert received["SMASHED"] == [2, 14, 14]
    assert "CUT_GRAD" not in {r["tag"] for r in coded["local-loss-int8"]["server_received"]}


@needs_data
def test_a_coded_run_gives_the_same_numbers_on_any_placement(tmp_path):
    flags = ["--train-subset", "256", "--test-subset", "100", "--patience", "0", "--no-progress", "--epochs", "2",
             "--clients", "4", "--compress", "int4", "--compress-grad", "topk:0.2", "--leakage-images", "0"]
    records = []
    for ranks in (2, 3):  # the 4 clients on one client rank, then two of them on each of two
        result = mpirun(ranks, "split_learning.py", *flags, "--results-dir", str(tmp_path / str(ranks)), env=PINNED,
                        timeout=300)
        assert result.returncode == 0, result.stderr
        records.append(json.loads((tmp_path / str(ranks) / "split.json").read_text())["epochs"])
    for epochs in records[1:]:
        assert [e["test_loss"] for e in epochs] == [e["test_loss"] for e in records[0]]
        # the first epoch also carries the set-up, a message a rank; control messages' digits vary by a few bytes
        assert epochs[1]["bytes_sent"] == pytest.approx(records[0][1]["bytes_sent"], abs=8 * 4)


@needs_data
def test_a_bad_codec_is_one_error_line_naming_the_accepted_forms(tmp_path):
    result = mpirun(2, "split_learning.py", *SMALL, "--compress", "int3", "--results-dir", str(tmp_path), timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert [line for line in result.stderr.splitlines() if "error" in line] == [result.stderr.strip().splitlines()[-1]]
    assert "int8, int4, topk:F" in result.stderr and not list(tmp_path.glob("*.json"))


# ------------------------------------------------------------------------------------ local-loss split learning

@pytest.fixture
def one_thread():
    """This process computes as the pinned runs do, on one thread, for the test alone."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@needs_data
def test_a_gradient_sent_to_a_local_loss_client_is_a_protocol_error(tmp_path):
    result = mpirun(3, "tests/helpers/split_learning_planted.py", "gradient", *SMALL, "--variant", "local-loss",
                    "--results-dir", str(tmp_path), timeout=120)
    assert result.returncode != 0
    assert "ProtocolError" in result.stderr and "unexpected message CUT_GRAD" in result.stderr


@needs_data
def test_a_local_loss_client_trains_on_its_own_loss_alone(tmp_path, one_thread):
    """One client: its part and head after an epoch are those of the two trained alone on the auxiliary loss,
    batch by batch, whatever the server did (the server's part is not in the computation)."""
    import argparse

    from data import batches, load_shards, shuffle_generator
    from splitlab.methods.local_loss import LocalLossClient
    from splitlab.training.steps import sgd

    flags = ["--train-subset", "600", "--test-subset", "100", "--patience", "0", "--no-progress", "--epochs", "1",
             "--variant", "local-loss", "--compress", "int4"]
    result = mpirun(2, "split_learning.py", *flags, "--results-dir", str(tmp_path), env=PINNED, timeout=120)
    assert result.returncode == 0, result.stderr
    saved = torch.load(tmp_path / "split.pt", weights_only=True)
    config = argparse.Namespace(**saved["config"])

    parts = LocalLossClient.make_parts(config)
    optimizer = sgd([p for part in parts for p in part.parameters()], config)
    _, shards, _ = load_shards(config, 1, [1])
    x, y = shards[1]
    for xb, yb in batches(x, y, config.batch_size, shuffle_generator(config.seed, 0)):
        loss = torch.nn.functional.cross_entropy(parts[1](parts[0](xb)), yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    for mine, theirs in zip(parts, saved["client_parts"][0]):
        for key, value in mine.state_dict().items():
            assert torch.allclose(value, theirs[key], atol=1e-6), key
    untrained = LocalLossClient.make_parts(config)[0].state_dict()
    assert not torch.allclose(untrained["0.0.weight"], saved["client_parts"][0][0]["0.0.weight"])


# ------------------------------------------------------------------------------------------------ FedAvg

@needs_data
def test_fedavg_int8_averages_the_dequantised_updates(tmp_path, one_thread):
    """Two clients, one round: the global model is the first model plus the shard-weighted average of each
    client's change, quantised to 8 bits a tensor and read back (by hand here, with numpy)."""
    import argparse

    from data import load_shards
    from models import build, flat_parameters
    from splitlab.methods.federated import Client

    flags = ["--train-subset", "600", "--test-subset", "100", "--patience", "0", "--no-progress", "--epochs", "1",
             "--clients", "2", "--compress", "int8"]
    result = in_process("federated_learning.py", *flags, "--results-dir", str(tmp_path), env=PINNED)
    assert result.returncode == 0, result.stderr
    saved = torch.load(tmp_path / "federated.pt", weights_only=True)
    config = argparse.Namespace(**saved["config"])

    model = build(config.model, config.seed)
    start = flat_parameters(model)
    sizes = [p.numel() for p in model.parameters()]
    shard_sizes, shards, _ = load_shards(config, 2, [1, 2])
    average = np.zeros(start.numel())
    for k, (x, y) in shards.items():
        params, _ = Client(k - 1, x, y, model, config).train(start, config.lr, 1)
        change = []
        for row in (params - start).split(sizes):
            row = row.double().numpy()
            lo, hi = float(np.float32(row.min())), float(np.float32(row.max()))
            step = (hi - lo) / 255
            change.append(lo + np.round((row - lo) / step) * step if step else np.full_like(row, lo))
        average += np.concatenate(change) * shard_sizes[k - 1] / sum(shard_sizes)
    expected = start.double().numpy() + average
    got = torch.cat([v.reshape(-1) for v in saved["global_model"].values()]).double().numpy()
    assert np.allclose(got, expected, atol=1e-6)
    assert not np.allclose(got, start.numpy(), atol=1e-4)  # it moved
    epoch = json.loads((tmp_path / "federated.json").read_text())["epochs"][0]
    assert epoch["model_bytes_up"] + epoch["model_bytes_down"] == fedavg_round_bytes(2, start.numel(), sizes, "int8")
    assert epoch["model_bytes_up"] < epoch["model_bytes_down"] / 3.9


# ------------------------------------------------------------------------------------------------ the report

def write_run(folder, name, method, config, epochs):
    run = {"method": method, "status": "completed", "config": config,
           "epochs": [{"epoch": i + 1, "val_acc": acc, "test_acc": acc, "bytes_sent": sent}
                      for i, (acc, sent) in enumerate(epochs)]}
    (folder / f"{name}.json").write_text(json.dumps(run))


def test_each_setting_is_measured_against_the_uncompressed_run_of_its_seed(tmp_path):
    from splitlab.reports.compression import compression_entries, load_compression, pareto

    split = {"variant": "vanilla", "cut_layer": 1, "compress_grad": None}
    for seed, acc in enumerate([0.90, 0.88, 0.86]):  # epoch 1 carries the set-up's bytes; the best epoch is read
        write_run(tmp_path, f"none-{seed}", "split", {**split, "compress": "none", "seed": seed},
                  [(acc, 1100), (acc - 0.01, 1000)])
    for seed, acc in enumerate([0.899, 0.85, 0.859]):
        write_run(tmp_path, f"int8-{seed}", "split", {**split, "compress": "int8", "seed": seed},
                  [(acc - 0.1, 300), (acc, 250)])
    write_run(tmp_path, "ll-0", "split", {**split, "variant": "local-loss", "compress": "bottleneck:1+int4",
                                          "seed": 0}, [(0.87, 20)])
    write_run(tmp_path, "unfinished", "split", {**split, "compress": "int4", "seed": 0}, [(0.5, 10)])
    (tmp_path / "unfinished.json").write_text((tmp_path / "unfinished.json").read_text().replace("completed",
                                                                                                 "running"))
    entries = {(e["method"], e["compress"]): e for e in compression_entries(load_compression(tmp_path))}
    assert set(entries) == {("split", "none"), ("split", "int8"), ("local-loss", "bottleneck:1+int4")}
    int8 = entries[("split", "int8")]
    assert int8["bytes_reduction"] == 4.0 and int8["compress_grad"] == "int8" and int8["cut_layer"] == 1
    # the median of the seeds' differences (0.1, 3.0, 0.1 points), not the difference of the medians (2.1)
    assert int8["accuracy_drop_points"] == pytest.approx(0.1)
    assert int8["seeds"] == [0, 1, 2] and int8["val_acc"] == 0.859
    local = entries[("local-loss", "bottleneck:1+int4")]
    assert local["seeds"] == [0] and local["bytes_reduction"] == 50.0 and local["compress_grad"] is None
    assert local["accuracy_drop_points"] == pytest.approx(3.0)
    assert pareto([(10, 0.8), (5, 0.7), (20, 0.79), (30, 0.9), (5, 0.6)]) == [(5, 0.7), (10, 0.8), (30, 0.9)]


def test_the_grid_lists_its_runs_and_refuses_a_bad_setting(tmp_path):
    result = in_process("compression.py", "--dry-run", "--settings", "split=bottleneck:2+int4/none,fedavg=int8",
                        "--seeds", "0,1", "--cuts", "2", "--results-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    names = [line.split()[-1] for line in result.stdout.splitlines() if line.startswith("==")]
    assert names == ["lenet5-report-cut2-split-bottleneck-2_int4-grad-none-s0", "lenet5-report-fedavg-int8-s0",
                     "lenet5-report-cut2-split-bottleneck-2_int4-grad-none-s1", "lenet5-report-fedavg-int8-s1"]
    assert "--compress bottleneck:2+int4 --compress-grad none --cut-layer 2" in result.stdout
    for bad in ["fedavg=bottleneck:2", "local-loss=int8/int4", "split=int3", "sgd=int8"]:
        refused = in_process("compression.py", "--dry-run", "--settings", bad)
        assert refused.returncode == 2 and "error:" in refused.stderr, bad


def test_the_attacks_see_the_activations_through_the_runs_codec():
    """What the attacker observes is what the server computed on: the decoded activations, at a bottleneck's
    channels (a noise-free int4 observation has at most 16 values an example)."""
    from splitlab.privacy.attack import observe

    front = split("lenet5", 2, 0, bottleneck=3)[0]
    x = torch.randn(5, 1, 28, 28)
    plain = observe(front, x, 0.0, torch.Generator())
    coded = observe(front, x, 0.0, torch.Generator(), compress="bottleneck:3+int4")
    assert plain.shape == coded.shape == (5, 3, 5, 5)
    assert not torch.equal(plain, coded)
    assert max(len(torch.unique(row)) for row in coded) <= 16
    assert (coded - plain).abs().max() <= (plain.amax((1, 2, 3)) - plain.amin((1, 2, 3))).max() / 30 + 1e-6
