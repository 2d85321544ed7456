"""The raw-text evaluation: labelled raw messages held out in folds, and never trained on.

The real test is raw citizen text whose segmented copy is not in the training files. The labelled
raw messages we have are
  * messages_raw_sample.csv (493 after dropping the id labelled two ways), and
  * raw messages of the unlabeled files (messages_unlabeled, messages_with_votes, replies) that
    are copies of a message in messages_tokenized.csv (token-set Jaccard >= 0.5, one label):
    the same letter posted to the board, labelled by its segmented copy.
Both are held out in stratified folds. A fold trains on the two development files minus every
copy of a held-out message: its segmented copies, their near-duplicates in the segmented file,
raw-sample messages that share one of those copies, and the held-out messages themselves; the
unlabeled pool (for anything that learns from it) loses the held-out messages and their copies.
So each held-out message is as new to the model as the hidden test's messages are.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

OVERLAP_JACCARD = 0.5  # token-set similarity above which two messages are the same message
_RARE = 300  # words in fewer documents than this nominate the candidates
_CANDIDATES = 50


def near_duplicates(
    queries: Sequence[Sequence[str]],
    targets: Sequence[Sequence[str]],
    threshold: float = OVERLAP_JACCARD,
    *,
    same_set: bool = False,
) -> list[list[int]]:
    """For each query, the indices of the targets whose token sets have Jaccard >= threshold.

    With same_set (queries are the targets), a document is not its own duplicate.
    """
    sets = [frozenset(t) for t in targets]
    index: defaultdict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(sets):
        for w in s:
            index[w].append(i)
    out: list[list[int]] = []
    for qi, tokens in enumerate(queries):
        s = frozenset(tokens)
        votes: Counter[int] = Counter()
        for w in s:
            postings = index.get(w, ())
            if len(postings) < _RARE:
                votes.update(postings)
        found = []
        for i, _ in votes.most_common(_CANDIDATES):
            if same_set and i == qi:
                continue
            union = len(s | sets[i])
            if union and len(s & sets[i]) / union >= threshold:
                found.append(i)
        out.append(sorted(found))
    return out


@dataclass(frozen=True, slots=True)
class HeldOut:
    """One labelled raw message of the evaluation."""

    text: str
    label: str
    source: str  # "raw_sample" or the unlabeled file it came from
    raw_index: int | None  # index in the raw sample, if it is a raw-sample message
    pool_index: int | None  # index in the unlabeled pool, if it comes from there
    copies: frozenset[int]  # segmented rows that are this message or near-duplicates of it


@dataclass(frozen=True, slots=True)
class Fold:
    test: list[int]  # indices into the evaluation messages
    seg_keep: list[int]  # segmented rows to train on
    raw_keep: list[int]  # raw-sample rows to train on
    pool_keep: list[int]  # unlabeled messages a model may learn from


@dataclass(frozen=True, slots=True)
class RawEvaluation:
    messages: list[HeldOut]
    folds: list[Fold]
    raw_sample_copies: int  # raw-sample messages with a segmented copy
    pool_copies: int  # unlabeled messages with a segmented copy (one label)


def build(
    seg_tokens: Sequence[Sequence[str]],
    seg_labels: Sequence[str],
    raw_texts: Sequence[str],
    raw_tokens: Sequence[Sequence[str]],
    raw_labels: Sequence[str],
    pool_texts: Sequence[str],
    pool_sources: Sequence[str],
    pool_tokens: Sequence[Sequence[str]],
    *,
    folds: int = 5,
    seed: int = 0,
) -> RawEvaluation:
    """The evaluation messages and their folds (see the module docstring)."""
    import numpy as np
    from sklearn.model_selection import StratifiedKFold

    seg_dups = near_duplicates(seg_tokens, seg_tokens, same_set=True)
    raw2seg = near_duplicates(raw_tokens, seg_tokens)
    pool2seg = near_duplicates(pool_tokens, seg_tokens)
    pool2raw = near_duplicates(pool_tokens, raw_tokens)

    def with_dups(rows: Sequence[int]) -> frozenset[int]:
        out = set(rows)
        for r in rows:
            out.update(seg_dups[r])
        return frozenset(out)

    messages = [
        HeldOut(raw_texts[i], raw_labels[i], "raw_sample", i, None, with_dups(raw2seg[i]))
        for i in range(len(raw_texts))
    ]
    pool_copies = 0
    for i, rows in enumerate(pool2seg):
        labels = {seg_labels[r] for r in rows}
        if len(labels) != 1:
            continue
        pool_copies += 1
        if pool2raw[i]:  # the same letter as a raw-sample message: evaluated once, as that
            continue
        messages.append(
            HeldOut(pool_texts[i], labels.pop(), pool_sources[i], None, i, with_dups(rows))
        )

    y = np.array([m.label for m in messages])
    splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    out: list[Fold] = []
    for _, test in splitter.split(np.zeros(len(y)), y):
        drop_seg: set[int] = set()
        drop_raw: set[int] = set()
        drop_pool: set[int] = set()
        for t in test:
            m = messages[t]
            drop_seg |= m.copies
            if m.raw_index is not None:
                drop_raw.add(m.raw_index)
            if m.pool_index is not None:
                drop_pool.add(m.pool_index)
                drop_raw.update(pool2raw[m.pool_index])
        drop_raw.update(i for i, rows in enumerate(raw2seg) if drop_seg.intersection(rows))
        drop_pool.update(
            i
            for i in range(len(pool_tokens))
            if drop_seg.intersection(pool2seg[i]) or drop_raw.intersection(pool2raw[i])
        )
        out.append(
            Fold(
                test=[int(t) for t in test],
                seg_keep=[i for i in range(len(seg_tokens)) if i not in drop_seg],
                raw_keep=[i for i in range(len(raw_texts)) if i not in drop_raw],
                pool_keep=[i for i in range(len(pool_tokens)) if i not in drop_pool],
            )
        )
    return RawEvaluation(messages, out, sum(bool(r) for r in raw2seg), pool_copies)
