"""What the server can tell about the labels in U-shaped split learning, which keeps them on the client.

The server sees the gradient at the second cut (HEAD_GRAD: the loss's gradient with respect to the activations
that enter the client's head). Li et al. (ICLR 2022, "Label Leakage and Protection in Two-party Split
Learning") read the labels from it in two ways, for two classes; here in a form for ten:

- direction: gradients of examples of one class point the same way (with a linear head, the gradient is
  W^T (p - e_y), dominated by -W^T e_y). The server clusters the gradients by direction (spherical k-means,
  k = 10) and names each cluster by a class; the score is the share of examples whose cluster's class is their
  label. Named with the true labels of every example (the best naming, by the Hungarian method) it is an upper
  bound; a real attacker knows a few labels (here one example of each class, drawn at random) and names the
  clusters by them, scored on the other examples. Chance is about 0.1.
- norm: Li et al.'s norm attack ranks examples by gradient norm, which separates a rare positive class from
  the rest. Here, for each class, how well the norm separates it from the others (the area under the ROC curve
  of the norm as a score for "is this class", or of its negative, whichever is larger), averaged over classes:
  0.5 is no information (with balanced classes the norm says how wrong a prediction is more than which class).

The scores are measured where the true labels are, on the client, on exactly the gradients it sent; only the
scores travel, in its turn report (split_variants.UShapedClient).
"""

import numpy as np
from scipy.cluster.vq import kmeans2
from scipy.optimize import linear_sum_assignment
from scipy.stats import rankdata

from data import NUM_CLASSES


def direction_attack(gradients, seed=0, classes=NUM_CLASSES, restarts=5):
    """Cluster ``gradients`` (N, F) by direction: a cluster index per example. Of ``restarts`` k-means runs the
    tightest clustering (least distortion: the attacker's own criterion, no label needed)."""
    unit = gradients / np.maximum(np.linalg.norm(gradients, axis=1, keepdims=True), 1e-12)
    best = None
    for restart in range(restarts):
        centroids, clusters = kmeans2(unit, classes, minit="++", seed=seed * restarts + restart)
        distortion = ((unit - centroids[clusters]) ** 2).sum()
        if best is None or distortion < best[0]:
            best = distortion, clusters
    return best[1]


def best_naming_accuracy(clusters, labels, classes=NUM_CLASSES):
    """The share of examples whose cluster, named by the best one-to-one naming of clusters by classes, is their
    label."""
    counts = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(counts, (clusters, labels), 1)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    return counts[rows, cols].sum() / len(labels)


def known_examples(labels, per_class, seed, classes=NUM_CLASSES):
    """Indices of ``per_class`` examples of each class (all of a class that has fewer), drawn with ``seed``: the
    examples whose labels the attacker knows."""
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.choice(np.flatnonzero(labels == c), min(per_class, int((labels == c).sum())),
                                      replace=False) for c in range(classes)]).astype(np.int64)


def known_naming_accuracy(clusters, labels, known, classes=NUM_CLASSES):
    """The share of the examples outside ``known`` whose cluster's class is their label, the clusters named one
    to one as the known examples' labels best agree (a cluster with none of them takes a class left over)."""
    counts = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(counts, (clusters[known], labels[known]), 1)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    naming = np.empty(classes, dtype=np.int64)
    naming[rows] = cols
    rest = np.setdiff1d(np.arange(len(labels)), known)
    return float((naming[clusters[rest]] == labels[rest]).mean()) if len(rest) else float("nan")


def norm_auc(gradients, labels, classes=NUM_CLASSES):
    """How well the gradient norm separates each class from the others (ROC AUC of the norm or of its negative,
    the larger), averaged over the classes present: 0.5 means the norm tells nothing about the label."""
    norms = np.linalg.norm(gradients, axis=1)
    ranks = rankdata(norms)  # Mann-Whitney: AUC = (rank sum of positives - n+(n+ + 1)/2) / (n+ n-)
    aucs = []
    for c in range(classes):
        positive = labels == c
        n_pos, n_neg = positive.sum(), (~positive).sum()
        if n_pos and n_neg:
            auc = (ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
            aucs.append(max(auc, 1 - auc))
    return float(np.mean(aucs)) if aucs else float("nan")


def label_leakage_report(gradients, labels, seed=0):
    """Both attacks' scores on ``gradients`` (N, F) with their true ``labels`` (N,), for the results file: the
    direction attack named with every label (its upper bound) and with one known example of each class."""
    gradients, labels = np.asarray(gradients, dtype=np.float64), np.asarray(labels)
    if len(labels) < NUM_CLASSES:
        return {}
    clusters = direction_attack(gradients, seed)
    return {"label_direction_acc": float(best_naming_accuracy(clusters, labels)),
            "label_direction_acc_one_known": known_naming_accuracy(clusters, labels, known_examples(labels, 1, seed)),
            "label_norm_auc": norm_auc(gradients, labels)}
