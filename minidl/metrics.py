"""Top-k accuracy of classifier scores against integer labels.

A sample is correct for top-k when its true label is among the k highest
scores.  Ties rank like a stable sort of the negated scores (the lower class
index ranks first), so the label's rank is the number of classes scoring higher
plus the number of lower-indexed classes scoring the same — no sort needed.

A sample with a NaN or infinite score (for any class) is never correct: a
diverged model scores 0, not the 100% that comparisons with NaN would give.
"""
from __future__ import annotations

from .backend import get_backend


def _arrays(logits, target):
    from .tensor import Tensor
    if isinstance(logits, Tensor):
        be, scores = logits.backend, logits.data
    else:
        be = get_backend("cpu")
        scores = be.asarray(logits)
    labels = target.data if isinstance(target, Tensor) else be.asarray(target)
    if scores.ndim != 2:
        raise ValueError(f"topk_accuracy: expected scores of shape (N, K), got {tuple(scores.shape)}")
    rows, classes = scores.shape
    if labels.dtype.kind not in "iu":
        raise TypeError(f"topk_accuracy: expected integer class labels as target, got dtype {labels.dtype}")
    if labels.ndim != 1 or labels.shape[0] != rows:
        raise ValueError(f"topk_accuracy: expected target of shape ({rows},) for scores of shape "
                         f"{tuple(scores.shape)}, got {tuple(labels.shape)}")
    if rows and (int(be.min(labels)) < 0 or int(be.max(labels)) >= classes):
        raise ValueError(f"topk_accuracy: target labels must lie in [0, {classes}), got "
                         f"{int(be.min(labels))}..{int(be.max(labels))}")
    return be, scores, labels


def _label_ranks(be, scores, labels):
    """0-based rank of each row's true label under the stable ordering; ``classes``
    (past every k) for a row with a non-finite score."""
    rows, classes = scores.shape
    row_index = be.arange(rows)
    label_scores = be.reshape(be.getitem(scores, (row_index, labels)), (rows, 1))
    higher = be.greater(scores, label_scores)
    earlier_tie = be.mul(be.equal(scores, label_scores),
                         be.less(be.reshape(be.arange(classes), (1, classes)), be.reshape(labels, (rows, 1))))
    ranks = be.add(be.sum(be.astype(higher, "int64"), axis=1),
                   be.sum(be.astype(earlier_tie, "int64"), axis=1))
    finite_count = be.sum(be.astype(be.isfinite(scores), "int64"), axis=1)
    return be.where(be.less(finite_count, classes), classes, ranks)


def _check_ks(ks, classes):
    single = isinstance(ks, int)
    ks = (ks,) if single else tuple(ks)
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"topk_accuracy: expected positive integer k values, got {k!r}")
        if k > classes:
            raise ValueError(f"topk_accuracy: k={k} exceeds the number of classes ({classes})")
    return ks, single


def topk_correct(logits, target, ks=(1, 5)):
    """Number of samples whose label is in the top k, for each k: a dict {k: count}
    (an int when ``ks`` is a single int).  Add these up over batches."""
    be, scores, labels = _arrays(logits, target)
    ks, single = _check_ks(ks, scores.shape[1])
    ranks = _label_ranks(be, scores, labels) if scores.shape[0] else None
    counts = {k: 0 if ranks is None else int(be.sum(be.less(ranks, k))) for k in ks}
    return counts[ks[0]] if single else counts


def topk_accuracy(logits, target, ks=(1, 5)):
    """Fraction in [0, 1] of samples whose label is in the top k: a dict {k: fraction}
    (a float when ``ks`` is a single int)."""
    counts = topk_correct(logits, target, ks)
    rows = logits.shape[0]
    if rows == 0:
        raise ValueError("topk_accuracy: accuracy of an empty batch is undefined")
    if isinstance(counts, int):
        return counts / rows
    return {k: c / rows for k, c in counts.items()}
