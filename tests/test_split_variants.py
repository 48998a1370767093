"""The split-learning family (vanilla, U-shaped, SplitFed V1/V2) on the MPI harness: each is the computation
it claims to be, moves the traffic its closed form says, and keeps what it promises to keep private."""

import json
import math

import pytest

from conftest import PINNED, in_process, mpirun, needs_data, results_in_one_job
from models import cut_shape, head_shape, split
from splitlab.costs.traffic import split_epoch_bytes
from splitlab.errors import InputError

pytestmark = needs_data
SMALL = ["--train-subset", "600", "--test-subset", "300", "--patience", "0", "--no-progress"]
VARIANTS = ["vanilla", "u-shaped", "sflv1", "sflv2"]
MODELS = [("lenet5-report", "vanilla"), ("lenet5-report", "u-shaped"), ("vgg-small", "vanilla"), ("vgg-small", "sflv2")]


def load(path):
    return json.loads(path.read_text())


ONE_CLIENT = {  # a run of one client on one client rank: regular learning computed in two parts
    **{variant: (["--train-subset", "600", "--test-subset", "300", "--validation", "100"], variant, "1")
       for variant in VARIANTS},  # --validation: an evaluation batch of validation and test images
    **{f"{model}-{variant}": (["--train-subset", "300", "--test-subset", "100", "--model", model], variant,
                              "3" if model == "vgg-small" else "2")  # the deepest cut: all but the classifier
       for model, variant in MODELS},
}
ONE_EPOCH = ["--patience", "0", "--no-progress", "--epochs", "1"]


@pytest.fixture(scope="module")
def one_client(tmp_path_factory):
    """The results of every run of ONE_CLIENT, by name, pinned threads: made in one MPI job on the module's first
    use (``make test`` gives a module to one worker)."""
    return results_in_one_job(2, {name: ["split_learning.py", *flags, *ONE_EPOCH, "--variant", variant, "--cut-layer",
                                         cut] for name, (flags, variant, cut) in ONE_CLIENT.items()},
                              tmp_path_factory.mktemp("one-client"), timeout=900, env=PINNED)


@pytest.mark.parametrize("variant", VARIANTS)
def test_with_one_client_every_variant_is_regular_learning(variant, one_client, regular_losses, regular_epochs):
    flags = [*ONE_CLIENT[variant][0], *ONE_EPOCH]
    saved = one_client[variant]
    assert saved["method"] == "split" and saved["config"]["variant"] == variant
    assert [e["test_loss"] for e in saved["epochs"]] == pytest.approx(regular_losses(*flags), abs=1e-4)
    assert saved["epochs"][0]["val_loss"] == pytest.approx(regular_epochs(*flags)[0]["val_loss"], abs=1e-4)
    assert_work_is_regular_learnings(saved["epochs"][0], regular_epochs(*flags)[0])


def assert_work_is_regular_learnings(split_epoch, regular_epoch):
    """The client computes its part, the server the rest: together what regular learning computes (work.py)."""
    assert 0 < split_epoch["client_flops"][0] < regular_epoch["client_flops"][0]
    assert split_epoch["client_flops"][0] + split_epoch["server_flops"] == regular_epoch["client_flops"][0]
    assert split_epoch["client_cpu_s"][0] > 0 and split_epoch["client_peak_rss_mb"][0] > 0


@pytest.mark.parametrize("model, variant", MODELS)
def test_with_one_client_every_model_is_regular_learning(model, variant, one_client, regular_losses, regular_epochs):
    flags, _, cut = ONE_CLIENT[f"{model}-{variant}"]
    saved = one_client[f"{model}-{variant}"]
    assert saved["config"]["model"] == model and saved["config"]["variant"] == variant
    assert {tuple(r["shape_per_example"]) for r in saved["server_received"] if r["tag"] == "SMASHED"} == \
        {cut_shape(model, int(cut))}
    assert [e["test_loss"] for e in saved["epochs"]] == pytest.approx(regular_losses(*flags, *ONE_EPOCH), abs=1e-4)
    assert_work_is_regular_learnings(saved["epochs"][0], regular_epochs(*flags, *ONE_EPOCH)[0])


def test_a_cut_the_model_does_not_have_is_refused(tmp_path):
    result = mpirun(2, "split_learning.py", *SMALL, "--model", "lenet5-report", "--cut-layer", "3",
                    "--results-dir", str(tmp_path), timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == "error: lenet5-report has cut points 1, 2, not 3"


def closed_form(variant, train, test, clients, cut_layer=1, head_layers=1, **extra):
    """traffic.split_epoch_bytes for LeNet-5 at ``cut_layer``."""
    return split_epoch_bytes(variant, train, test, clients, c=math.prod(cut_shape("lenet5", cut_layer)),
                             p=sum(x.numel() for x in split("lenet5", cut_layer)[0].parameters()),
                             h=head_shape("lenet5", head_layers)[0], **extra)


FOUR_CLIENTS = ["--epochs", "2", "--clients", "4"]


@pytest.fixture(scope="module")
def four_clients(tmp_path_factory):
    """The results of two epochs of each variant with four clients on two client ranks (U-shaped with two head
    layers), by variant, pinned threads: made in one MPI job on the module's first use."""
    return results_in_one_job(3, {variant: ["split_learning.py", *SMALL, *FOUR_CLIENTS, "--variant", variant,
                                            *(["--head-layers", "2"] if variant == "u-shaped" else [])]
                                  for variant in VARIANTS}, tmp_path_factory.mktemp("four-clients"), timeout=600,
                              env=PINNED)


def test_sflv1_is_fedavg_computed_in_two_parts_on_any_placement(four_clients, tmp_path):
    """Four clients on two client ranks (placement.py) against FedAvg's four clients in one process."""
    sfl = four_clients["sflv1"]
    fedavg = in_process("federated_learning.py", *SMALL, *FOUR_CLIENTS, "--results-dir", str(tmp_path), env=PINNED)
    assert fedavg.returncode == 0, fedavg.stderr
    fedavg = load(tmp_path / "federated.json")
    assert [e["test_loss"] for e in sfl["epochs"]] == pytest.approx([e["test_loss"] for e in fedavg["epochs"]],
                                                                     abs=1e-4)
    assert sfl["epochs"][1]["test_loss"] < sfl["epochs"][0]["test_loss"]  # it learns: no trivial match
    # what the clients compute: FedAvg's clients the whole network, SplitFed's their part and the server the rest
    fedavg_epoch, sfl_epoch = fedavg["epochs"][1], sfl["epochs"][1]
    assert sum(fedavg_epoch["client_flops"]) == sum(sfl_epoch["client_flops"]) + sfl_epoch["server_flops"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_traffic_is_the_closed_form_whatever_the_placement(four_clients, variant):
    """Four clients on two client ranks: what would cross the network between four data holders is counted,
    whether or not it crosses between processes here (placement.py)."""
    epoch = four_clients[variant]["epochs"][0]
    # Clients report their traffic when they next report: what they received after their last report this
    # epoch (a report itself, SplitFed's averaged part) is counted in the next epoch, a few kB at most.
    assert epoch["bytes_sent"] == pytest.approx(epoch["bytes_received"], abs=4000)
    # Every array is a term of the formula; what is left is the JSON control messages, well under 0.1 %.
    formula = closed_form(variant, 600, 300, 4, head_layers=2 if variant == "u-shaped" else 1)
    assert formula <= epoch["bytes_sent"] <= formula * 1.001


def test_u_shaped_server_receives_only_activations_of_the_two_cuts(four_clients):
    kinds = {(r["tag"], tuple(r["shape_per_example"])) for r in four_clients["u-shaped"]["server_received"]}
    assert kinds == {("SMASHED", cut_shape("lenet5", 1)), ("HEAD_GRAD", head_shape("lenet5", 2)), ("TURN_DONE", ())}


def test_a_u_shaped_client_that_sends_labels_is_a_protocol_error(tmp_path):
    result = mpirun(3, "tests/helpers/split_learning_planted.py", "labels", *SMALL, "--epochs", "1",
                    "--variant", "u-shaped", "--results-dir", str(tmp_path), timeout=120)
    assert result.returncode != 0
    assert "ProtocolError: server expected SMASHED from client 1 (rank 1), got LABELS" in result.stderr


def test_sflv_with_passed_weights_is_refused():
    """The script's check of its flags; that a refusal there ends the job with one line and status 2 is the test
    of a cut the model lacks, above."""
    import split_learning
    for variant in ("sflv1", "sflv2"):
        with pytest.raises(InputError, match="--client-weights pass is for clients that take turns"):
            split_learning.check(split_learning.build_parser().parse_args(
                ["--variant", variant, "--client-weights", "pass"]), world_size=2)
    split_learning.check(split_learning.build_parser().parse_args(["--client-weights", "pass"]), world_size=2)
