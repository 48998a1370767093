"""The benchmarks: their arithmetic (ratios to the baseline, overall and round by round), and that they run."""

import sys

import pytest

from common import compare_across_cores, machine_cores, ratio_table
from conftest import mpirun

FAKE = [sys.executable, "tests/helpers/fake_method.py"]


def test_ratio_table_pairs_each_round_with_the_baselines_same_round():
    times = {"regular": [4.0, 8.0, 5.0], "split": [6.0, 8.8, 5.5]}
    header, regular, split = ratio_table(times, "regular")
    assert header.split()[:5] == ["method", "median", "s", "ratio", "by"]
    assert regular.split() == ["regular", "5.00", "1.00", "1.00", "(1.00,", "1.00,", "1.00)"]
    # medians 6.0 / 5.0 = 1.20; the rounds give 1.50, 1.10, 1.10, whose median is 1.10
    assert split.split() == ["split", "6.00", "1.20", "1.10", "(1.50,", "1.10,", "1.10)"]


def test_split_compute_benchmark_times_the_same_computation_as_the_whole_step():
    import torch
    from bench_split_compute import split_step

    from models import cut_shape, lenet5, split
    from splitlab.training.steps import train_step

    def sgd(params):
        return torch.optim.SGD(params, lr=0.01, momentum=0.9, weight_decay=5e-4)

    torch.manual_seed(1)
    x, y = torch.randn(5, 64, 1, 28, 28), torch.randint(0, 10, (5, 64))
    model = lenet5(0)
    optimizer = sgd(model.parameters())
    client_part, server_part = split("lenet5", 1, 0)
    client_optimizer, server_optimizer = sgd(client_part.parameters()), sgd(server_part.parameters())
    smashed_buf = torch.empty(64, *cut_shape("lenet5", 1))
    for xb, yb in zip(x, y):
        whole_loss = train_step(model, optimizer, xb, yb)
        split_loss = split_step(client_part, client_optimizer, server_part, server_optimizer, smashed_buf, xb, yb)
        assert abs(whole_loss - split_loss) < 1e-5


def test_each_core_count_gets_its_own_table_and_its_count_in_the_commands(capsys):
    # "{cores}" becomes the table's core count; counts above the machine's are skipped with a line.
    tables = compare_across_cores({"base": [*FAKE, "2"], "other": [*FAKE, "{cores}"]}, 1, "base",
                                  f"1,{machine_cores() + 1}")
    assert tables == {1: {"base": [2.0], "other": [1.0]}}
    assert f"{machine_cores() + 1} cores: skipped" in capsys.readouterr().out


def test_a_failing_command_ends_the_benchmark_with_its_output():
    with pytest.raises(SystemExit) as ended:
        compare_across_cores({"base": [*FAKE, "fail"]}, 1, "base")
    assert "fake_method.py fail" in str(ended.value) and "something went wrong" in str(ended.value)


def test_the_gpu_benchmark_goes_on_past_a_failing_method_and_names_it(monkeypatch, capsys):
    # A GPU's time is short: the first GPU run lost every method after the one that failed.
    import bench_gpu
    import torch
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(bench_gpu, "METHODS", {"broken": [*FAKE, "fail"], "fine": [*FAKE, "2"]})
    monkeypatch.setattr(sys, "argv", ["bench_gpu.py", "--rounds", "1", "--models", "lenet5",
                                      "--methods", "broken,fine"])
    with pytest.raises(SystemExit) as ended:
        bench_gpu.main()
    assert str(ended.value) == "failed: lenet5, broken"
    out = capsys.readouterr().out
    assert "something went wrong" in out and "== lenet5, fine" in out and "cuda" in out.split("== lenet5, fine")[1]


@pytest.mark.parametrize("bells, label", [("on", "doorbells,"), ("off", "no doorbells,")])
def test_ping_pong_times_the_waiting_path_it_is_asked_for(bells, label):
    result = mpirun(2, "benchmarks/ping_pong.py", "--rounds", "5", "--work-ms", "0.5", timeout=60,
                    env={"DOORBELLS": bells})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(label)
