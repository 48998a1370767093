"""The label attacks on U-shaped split learning (label_leakage.py): exact where the gradients carry the labels,
near chance where they do not, and scored on the gradients a run really sent."""


import numpy as np
import pytest

from conftest import PINNED, needs_data, results_in_one_job
from splitlab.privacy.label_leakage import (
    best_naming_accuracy,
    direction_attack,
    known_examples,
    known_naming_accuracy,
    label_leakage_report,
    norm_auc,
)


def planted_gradients(n=600, features=84, seed=0):
    """The gradient at a linear head's input, W^T (p - e_y), for random W, predictions p and labels y."""
    rng = np.random.default_rng(seed)
    weights, labels = rng.normal(size=(10, features)), rng.integers(0, 10, n)
    logits = rng.normal(size=(n, 10))
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return (p - np.eye(10)[labels]) @ weights, labels


def test_the_direction_attack_reads_planted_labels_exactly_and_random_gradients_at_chance():
    gradients, labels = planted_gradients()
    assert label_leakage_report(gradients, labels)["label_direction_acc"] == 1.0
    assert label_leakage_report(gradients, labels)["label_direction_acc_one_known"] == 1.0
    noise = np.random.default_rng(1).normal(size=gradients.shape)
    assert label_leakage_report(noise, labels)["label_direction_acc"] < 0.25  # chance 0.1, the best naming a bit more


def test_the_direction_attack_reads_the_direction_whatever_each_gradients_size():
    """Each example's gradient scaled by its own factor (1e-3 to 1e3, as a batch's losses differ): the attack
    clusters directions, so it still reads every label."""
    gradients, labels = planted_gradients(seed=2)
    scales = 10.0 ** np.random.default_rng(3).uniform(-3, 3, size=(len(labels), 1))
    assert label_leakage_report(gradients * scales, labels)["label_direction_acc"] == 1.0


def test_the_report_needs_a_batch_of_ten_and_a_norm_needs_two_classes_to_compare():
    gradients, labels = planted_gradients(n=10, seed=4)
    assert set(label_leakage_report(gradients, labels)) == {"label_direction_acc", "label_direction_acc_one_known",
                                                            "label_norm_auc"}
    assert label_leakage_report(gradients[:9], labels[:9]) == {}  # fewer examples than classes: no score
    assert np.isnan(norm_auc(gradients, np.full(10, 3)))  # one class only: no class to tell it from


def test_the_direction_attack_follows_its_seed():
    """On gradients without structure k-means' start decides the clusters: one seed gives one clustering, another
    seed another, and the report clusters with the seed it is given."""
    rng = np.random.default_rng(5)
    noise, labels = rng.normal(size=(200, 84)), rng.integers(0, 10, 200)
    clusters = direction_attack(noise, seed=3)
    assert np.array_equal(clusters, direction_attack(noise, seed=3))
    assert not np.array_equal(clusters, direction_attack(noise, seed=4))
    assert label_leakage_report(noise, labels, seed=3)["label_direction_acc"] == best_naming_accuracy(clusters, labels)


def test_an_attacker_names_the_clusters_by_the_labels_it_knows():
    """Clusters that hold each class but for the two known examples of classes 0 and 1, which sit in each other's
    cluster: named by them, the two clusters swap names, and the other examples of those classes are read wrong
    (4 of 12 right), where the best naming with every label reads 13 of 15."""
    labels = np.repeat([0, 1, 2], 5)
    clusters = labels.copy()
    clusters[[0, 5]] = [1, 0]
    known = np.array([0, 5, 10])
    assert known_naming_accuracy(clusters, labels, known) == pytest.approx(4 / 12)
    assert best_naming_accuracy(clusters, labels) == pytest.approx(13 / 15)
    assert np.isnan(known_naming_accuracy(clusters, labels, np.arange(15)))  # nothing left to score


def test_the_known_examples_are_one_a_class_drawn_with_the_seed():
    labels = np.repeat(np.arange(10), 20)
    known = known_examples(labels, 1, seed=0)
    assert sorted(labels[known]) == list(range(10))
    assert np.array_equal(known, known_examples(labels, 1, seed=0))  # the same seed, the same examples
    assert not np.array_equal(known, known_examples(labels, 1, seed=1))
    assert sorted(known_examples(labels, 20, seed=0)) == list(range(200))  # each example once, none twice
    few = np.array([0, 0, 3, 0])
    assert sorted(few[known_examples(few, 2, seed=0)]) == [0, 0, 3]  # a class with fewer: all of it


def test_the_best_naming_is_found_whatever_the_cluster_numbers():
    labels = np.array([0, 0, 1, 1, 2, 2, 3])
    assert best_naming_accuracy(np.array([5, 5, 7, 7, 1, 1, 0]), labels) == 1.0
    assert best_naming_accuracy(np.array([5, 5, 5, 5, 1, 1, 0]), labels) == pytest.approx(5 / 7)


def test_the_norm_attack_sees_a_class_with_larger_gradients_and_nothing_in_equal_norms():
    rng = np.random.default_rng(2)
    labels = np.repeat(np.arange(10), 50)
    unit = np.eye(84)[rng.integers(0, 84, 500)]  # norms exactly 1
    assert norm_auc(unit, labels) == pytest.approx(0.5, abs=1e-6)  # every norm 1: ties everywhere
    unit[labels == 3] *= 2
    aucs_one_class = (1.0 + 9 * (0.5 + 0.5 / 9)) / 10  # class 3 fully separated; each other class slightly
    assert norm_auc(unit, labels) == pytest.approx(aucs_one_class, abs=1e-6)
    assert norm_auc(unit[labels >= 3], labels[labels >= 3]) == pytest.approx(  # classes 0-2 absent: not counted
        (1.0 + 6 * (0.5 + 0.5 / 6)) / 7, abs=1e-6)


def test_the_report_scores_the_known_naming_on_the_examples_it_does_not_know():
    """On gradients without structure the naming depends on which examples are known: the report draws one
    of each class with its seed (the same report twice) and scores the other 93 of 103 examples (a count of
    them right, over 93)."""
    rng = np.random.default_rng(6)
    noise, labels = rng.normal(size=(103, 84)), np.concatenate([np.arange(10), rng.integers(0, 10, 93)])
    report = label_leakage_report(noise, labels, seed=3)
    assert label_leakage_report(noise, labels, seed=3) == report
    right = report["label_direction_acc_one_known"] * 93
    assert right == pytest.approx(round(right), abs=1e-9) and 0 < right < 93


@needs_data
def test_a_u_shaped_server_reads_the_labels_from_its_gradients_unless_they_are_noisy(tmp_path):
    flags = ["--variant", "u-shaped", "--train-subset", "2000", "--test-subset", "500", "--epochs", "1",
             "--patience", "0", "--no-progress", "--leakage-images", "0"]
    made = results_in_one_job(2, {"plain": ["split_learning.py", *flags],
                                  "noisy": ["split_learning.py", *flags, "--grad-noise-std", "0.05"]},
                              tmp_path, env=PINNED, timeout=360)
    runs = {name: run["epochs"][0] for name, run in made.items()}
    assert runs["plain"]["label_direction_acc"] > 0.8
    assert runs["noisy"]["label_direction_acc"] < runs["plain"]["label_direction_acc"] - 0.3
