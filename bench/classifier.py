#!/usr/bin/env python3
"""Classifier benchmark: ours vs the TF-IDF + LinearSVC baseline on the TipDM data.

Prints, for the shipped pipeline (classifier/) and for bench/baseline.py (both variants):
  1. stratified k-fold cross-validated macro-F1 on messages_tokenized.csv (de-duplicated), with
     the model families compared on the same folds and features (svc, lr, sgd, ridge, cnb, and
     an average of the calibrated svc/sgd/ridge probabilities), and svc without the head block;
  2. the raw-text evaluation (bench/_rawtext.py): labelled RAW messages (the raw sample, and raw
     copies of tokenized messages found in the unlabeled files) held out in folds, each fold
     trained on the development files minus every copy of its held-out messages, ours by the
     shipped recipe (classifier.train.train) and scored through Classifier.predict, the path a
     server uses; macro-F1, accuracy, per-class F1, and the paired bootstrap gain; the same
     messages scored as their closest segmented copy (how much raw text itself costs); with
     --learning-curve, ours trained on shares of each fold's rows (does more data help);
  3. ms per document (one request at a time over the 2,796 messages of messages_unlabeled.csv,
     as the server calls it, with the load average at the time), model load time, training time.
Fixed seeds throughout.

Run from the repository root (reads ../shared/data/tipdm, ~15 minutes on 2 idle cores):

    .venv/bin/python bench/classifier.py
    .venv/bin/python bench/classifier.py --families svc --skip-cv     # raw-text part only
    .venv/bin/python bench/classifier.py --families svc --skip-cv --learning-curve 0.25,0.5,0.75
    .venv/bin/python bench/classifier.py --json-out /tmp/classifier-bench.json

The last line of output is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
DEFAULT_DATA = REPO.parent / "shared" / "data" / "tipdm"
UNLABELED_FILES = ("messages_unlabeled.csv", "messages_with_votes.csv", "replies.csv")
BASELINES = ("baseline", "baseline_keep_single")


def _fix_path() -> None:
    # `python bench/classifier.py` puts bench/ first on sys.path, where this very file would
    # shadow the classifier package; the repository root must come first.
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]
    sys.path.insert(0, str(REPO))
    sys.path.append(str(BENCH))


def say(text: str) -> None:
    print(text, flush=True)


def read_unlabeled(data: Path) -> tuple[list[str], list[str]]:
    """subject + detail of every distinct message of the unlabeled files, and its file name."""
    from classifier.text import normalize

    texts: list[str] = []
    sources: list[str] = []
    seen: set[str] = set()
    for name in UNLABELED_FILES:
        path = data / name
        if not path.is_file():
            continue
        for row in csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"))):
            text = f"{row['subject']}\n{row['detail']}".strip()
            key = normalize(text)
            if key and key not in seen:
                seen.add(key)
                texts.append(text)
                sources.append(name)
    return texts, sources


def paired_bootstrap(
    truth: Sequence[str], ours: Sequence[str], theirs: Sequence[str], seed: int, rounds: int = 2000
) -> dict[str, Any]:
    """Macro-F1 gain of ours over theirs on the same documents, with a bootstrap 95% interval."""
    import numpy as np
    from sklearn.metrics import f1_score

    t, a, b = np.asarray(truth), np.asarray(ours), np.asarray(theirs)
    rng = np.random.default_rng(seed)
    gains = []
    for _ in range(rounds):
        i = rng.integers(0, len(t), len(t))
        gains.append(f1_score(t[i], a[i], average="macro") - f1_score(t[i], b[i], average="macro"))
    return {
        "gain": round(float(f1_score(t, a, average="macro") - f1_score(t, b, average="macro")), 4),
        "ci95": [round(float(np.percentile(gains, q)), 4) for q in (2.5, 97.5)],
        "only_ours_right": int(((a == t) & (b != t)).sum()),
        "only_theirs_right": int(((a != t) & (b == t)).sum()),
    }


def scores(truth: Sequence[str], predicted: Sequence[str]) -> dict[str, Any]:
    from sklearn.metrics import accuracy_score, f1_score

    labels = sorted(set(truth))
    per_class = f1_score(truth, predicted, labels=labels, average=None, zero_division=0)
    return {
        "macro_f1": round(float(f1_score(truth, predicted, average="macro", zero_division=0)), 4),
        "accuracy": round(float(accuracy_score(truth, predicted)), 4),
        "n": len(truth),
        "per_class_f1": {c: round(float(f), 4) for c, f in zip(labels, per_class, strict=True)},
    }


def cross_validate(
    seg: Sequence[Any], seg_tokens: Sequence[Sequence[str]], families: list[str], args: Any
) -> dict[str, Any]:
    """Stratified k-fold CV on the tokenized set: families, head-block ablation, baselines."""
    import numpy as np
    from baseline import Baseline
    from sklearn.metrics import f1_score
    from sklearn.model_selection import StratifiedKFold

    from classifier.features import FeatureMatrixBuilder, export_estimator, make_estimator
    from classifier.model import Classifier
    from classifier.taxonomy import Taxonomy
    from classifier.train import TrainConfig, training_segmenter

    config = TrainConfig(seed=args.seed)
    segmenter = training_segmenter()
    y = np.array([e.label for e in seg])
    docs = [(e.text, e.form.value) for e in seg]
    cv_scores: defaultdict[str, list[float]] = defaultdict(list)
    served_agreement = []
    folds = StratifiedKFold(args.folds, shuffle=True, random_state=args.seed)
    for k, (tr, te) in enumerate(folds.split(np.zeros(len(y)), y)):
        started = time.perf_counter()
        builder = FeatureMatrixBuilder(config.features)
        X_tr = builder.fit_transform([seg_tokens[i] for i in tr])
        X_te = builder.transform([seg_tokens[i] for i in te])
        probas = {}
        min_count = min(Counter(y[tr]).values())
        classes = None
        for family in families:
            est = make_estimator(family, args.seed, min_count).fit(X_tr, y[tr])
            cv_scores[family].append(f1_score(y[te], est.predict(X_te), average="macro"))
            if family in ("svc", "sgd", "ridge"):
                probas[family] = est.predict_proba(X_te)
            if family == args.family:
                # the shipped, exported scorer must give the same answers as scikit-learn
                served = Classifier(
                    builder.export(), export_estimator(est), segmenter, Taxonomy({}), {}, {}
                )
                labels = [top[0][0] for top in served.top_labels([seg_tokens[i] for i in te])]
                cv_scores["ours"].append(f1_score(y[te], labels, average="macro"))
                served_agreement.append(float(np.mean(np.array(labels) == est.predict(X_te))))
                classes = est.classes_
                # ablation: the same model without the head block (its columns come last)
                n_body = len(builder.word.vocabulary_) + len(builder.char.vocabulary_)
                if n_body < X_tr.shape[1]:
                    plain = make_estimator(family, args.seed, min_count)
                    plain.fit(X_tr[:, :n_body], y[tr])
                    cv_scores[f"{family}_without_head"].append(
                        f1_score(y[te], plain.predict(X_te[:, :n_body]), average="macro")
                    )
        if len(probas) == 3 and classes is not None:
            avg = sum(probas.values())
            cv_scores["ens(svc+sgd+ridge)"].append(
                f1_score(y[te], classes[np.argmax(avg, axis=1)], average="macro")
            )
        for keep_single in (False, True):
            name = BASELINES[keep_single]
            base = Baseline(keep_single, args.seed).fit([docs[i] for i in tr], y[tr])
            cv_scores[name].append(
                f1_score(y[te], base.predict([docs[i] for i in te]), average="macro")
            )
        say(
            f"CV fold {k + 1}/{args.folds}: "
            + ", ".join(f"{n} {v[-1]:.4f}" for n, v in cv_scores.items())
            + f" ({time.perf_counter() - started:.0f}s)"
        )
    out = {
        "macro_f1": {
            n: {"mean": round(float(np.mean(v)), 4), "std": round(float(np.std(v)), 4)}
            for n, v in cv_scores.items()
        },
        "served_vs_sklearn_agreement": round(float(np.mean(served_agreement)), 6),
        "ours_folds_won": sum(
            o > max(b1, b2)
            for o, b1, b2 in zip(
                cv_scores["ours"], cv_scores[BASELINES[0]], cv_scores[BASELINES[1]], strict=True
            )
        ),
    }
    ablation = f"{args.family}_without_head"
    if ablation in cv_scores:
        out["head_block_folds_won"] = sum(
            a > b for a, b in zip(cv_scores[args.family], cv_scores[ablation], strict=True)
        )
    return out


def raw_text_evaluation(
    seg: Sequence[Any],
    seg_tokens: Sequence[Sequence[str]],
    raw: Sequence[Any],
    raw_tokens: Sequence[Sequence[str]],
    pool_texts: Sequence[str],
    pool_sources: Sequence[str],
    pool_tokens: Sequence[Sequence[str]],
    args: Any,
) -> dict[str, Any]:
    """Held-out raw messages in folds (bench/_rawtext.py); ours and both baselines."""
    import _rawtext
    from baseline import Baseline

    from classifier.datasets import Dataset, Form
    from classifier.train import TrainConfig, train

    ev = _rawtext.build(
        seg_tokens,
        [e.label for e in seg],
        [e.text for e in raw],
        raw_tokens,
        [e.label for e in raw],
        pool_texts,
        pool_sources,
        pool_tokens,
        folds=args.folds,
        seed=args.seed,
    )
    messages = ev.messages
    n_pool = sum(m.pool_index is not None for m in messages)
    say(
        f"原始文本评估: {len(messages)} 条（raw sample {len(messages) - n_pool}，"
        f"未标注文件中与 tokenized 重复、按其标签标注的 {n_pool}），{args.folds} 折；"
        f"每折训练数据去掉留出消息的全部副本"
    )
    predicted: dict[str, list[str]] = {"ours": [""] * len(messages)}
    for name in BASELINES:
        predicted[name] = [""] * len(messages)
    # Each held-out message's closest segmented copy, scored by the same fold's model: how much
    # of the gap to CV is raw text itself (the copy is the same letter, segmented and stripped).
    copy_of = {
        t: closest_copy(m, raw_tokens, pool_tokens, seg_tokens) for t, m in enumerate(messages)
    }
    on_copy: dict[int, str] = {}
    shares: list[float] = args.learning_curve
    curve: dict[float, list[str]] = {share: [""] * len(messages) for share in shares}
    rng = random.Random(args.seed)
    ms: list[float] = []
    train_rows = []
    for k, fold in enumerate(ev.folds):
        started = time.perf_counter()
        seg_part = Dataset("tokenized", Form.SEGMENTED, [seg[i] for i in fold.seg_keep])
        raw_part = Dataset("raw_sample", Form.RAW, [raw[i] for i in fold.raw_keep])
        config = TrainConfig(family=args.family, seed=args.seed, holdout=0)
        clf = train([seg_part, raw_part], config=config)
        train_rows.append(len(fold.seg_keep) + len(fold.raw_keep))
        for t in fold.test:
            t0 = time.perf_counter()
            predicted["ours"][t] = clf.predict(messages[t].text).label
            ms.append((time.perf_counter() - t0) * 1000)
            copy = copy_of[t]
            if copy is not None:
                on_copy[t] = clf.top_labels([seg_tokens[copy]])[0][0][0]
        for share in shares:  # the same recipe on a random part of the fold's training rows
            seg_rows = rng.sample(fold.seg_keep, round(len(fold.seg_keep) * share))
            raw_rows = rng.sample(fold.raw_keep, round(len(fold.raw_keep) * share))
            smaller = train(
                [
                    Dataset("tokenized", Form.SEGMENTED, [seg[i] for i in sorted(seg_rows)]),
                    Dataset("raw_sample", Form.RAW, [raw[i] for i in sorted(raw_rows)]),
                ],
                config=config,
            )
            for t in fold.test:
                curve[share][t] = smaller.predict(messages[t].text).label
        docs = [(seg[i].text, "segmented") for i in fold.seg_keep]
        docs += [(raw[i].text, "raw") for i in fold.raw_keep]
        labels = [seg[i].label for i in fold.seg_keep] + [raw[i].label for i in fold.raw_keep]
        test_docs = [(messages[t].text, "raw") for t in fold.test]
        for keep_single in (False, True):
            base = Baseline(keep_single, args.seed).fit(docs, labels)
            for t, label in zip(fold.test, base.predict(test_docs), strict=True):
                predicted[BASELINES[keep_single]][t] = label
        truth = [messages[t].label for t in fold.test]
        fold_scores = {
            n: scores(truth, [p[t] for t in fold.test])["macro_f1"] for n, p in predicted.items()
        }
        say(
            f"raw fold {k + 1}/{len(ev.folds)}: {len(fold.test)} held out, "
            f"{train_rows[-1]} training rows; "
            + ", ".join(f"{n} {v:.4f}" for n, v in fold_scores.items())
            + f" ({time.perf_counter() - started:.0f}s)"
        )
    truth = [m.label for m in messages]
    out: dict[str, Any] = {
        "n": len(messages),
        "n_raw_sample": len(messages) - n_pool,
        "n_unlabeled_copies": n_pool,
        "folds": len(ev.folds),
        "mean_training_rows": round(sum(train_rows) / len(train_rows)),
        "raw_sample_messages_with_a_tokenized_copy": ev.raw_sample_copies,
    }
    parts: dict[str, Callable[[Any], bool]] = {
        "raw_sample": lambda m: m.raw_index is not None,
        "unlabeled_copies": lambda m: m.pool_index is not None,
    }
    for name, pred in predicted.items():
        result = scores(truth, pred)
        for part, member in parts.items():
            idx = [i for i, m in enumerate(messages) if member(m)]
            result[part] = scores([truth[i] for i in idx], [pred[i] for i in idx])["macro_f1"]
        out[name] = result
    with_copy = sorted(on_copy)
    out["ours_same_messages"] = {
        "n": len(with_copy),
        "raw_text_macro_f1": scores(
            [truth[t] for t in with_copy], [predicted["ours"][t] for t in with_copy]
        )["macro_f1"],
        "segmented_copy_macro_f1": scores(
            [truth[t] for t in with_copy], [on_copy[t] for t in with_copy]
        )["macro_f1"],
        "same_label_share": round(
            sum(on_copy[t] == predicted["ours"][t] for t in with_copy) / max(1, len(with_copy)), 4
        ),
    }
    if shares:
        out["learning_curve"] = {
            f"{share:g}": scores(truth, curve[share])["macro_f1"] for share in shares
        } | {"1": out["ours"]["macro_f1"]}
    strongest = max(BASELINES, key=lambda n: out[n]["macro_f1"])
    out["gain_vs_" + strongest] = paired_bootstrap(
        truth, predicted["ours"], predicted[strongest], seed=args.seed
    )
    out["ours_ms_per_doc"] = round(sum(ms) / len(ms), 3)
    return out


def closest_copy(
    message: Any,
    raw_tokens: Sequence[Sequence[str]],
    pool_tokens: Sequence[Sequence[str]],
    seg_tokens: Sequence[Sequence[str]],
) -> int | None:
    """The segmented row among the message's copies whose words overlap its own the most."""
    if not message.copies:
        return None
    if message.raw_index is not None:
        own = set(raw_tokens[message.raw_index])
    else:
        own = set(pool_tokens[message.pool_index])

    def overlap(row: int) -> tuple[float, int]:
        other = set(seg_tokens[row])
        return (len(own & other) / max(1, len(own | other)), -row)

    return max(message.copies, key=overlap)


def _shares(text: str) -> list[float]:
    """--learning-curve's value: shares between 0 and 1 (exclusive), comma-separated."""
    try:
        shares = [float(x) for x in text.split(",") if x]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text}") from None
    if any(not 0 < x < 1 for x in shares):
        raise argparse.ArgumentTypeError("each share must be between 0 and 1 (exclusive)")
    return shares


def _fresh_process_load(model_dir: Path) -> float:
    """Seconds from a new interpreter's first import of the classifier to a loaded model."""
    code = (
        "import sys, time\n"
        "t = time.perf_counter()\n"
        "from classifier.model import Classifier\n"
        "Classifier.load(sys.argv[1])\n"
        "print(time.perf_counter() - t)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(model_dir)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(done.stdout.split()[-1])


def speed(seg_set: Any, raw_set: Any, texts: Sequence[str], args: Any) -> dict[str, Any]:
    """Training time of the shipped recipe, model load time, ms per request one at a time."""
    import numpy as np
    from baseline import Baseline

    from classifier.model import Classifier
    from classifier.train import TrainConfig, train

    t0 = time.perf_counter()
    model = train(
        [seg_set, raw_set],
        taxonomy=args.data_dir / "taxonomy.csv",
        config=TrainConfig(family=args.family, seed=args.seed, holdout=0),
    )
    ours_train_s = time.perf_counter() - t0
    docs = [(e.text, e.form.value) for e in seg_set.examples + raw_set.examples]
    t1 = time.perf_counter()
    Baseline(True, args.seed).fit(docs, [e.label for e in seg_set.examples + raw_set.examples])
    base_train_s = time.perf_counter() - t1
    with tempfile.TemporaryDirectory() as tmp:
        model.save(Path(tmp) / "model")
        Classifier.load(Path(tmp) / "model")  # first load builds jieba's cache if missing
        loads = []
        for _ in range(3):
            t2 = time.perf_counter()
            Classifier.load(Path(tmp) / "model")
            loads.append(time.perf_counter() - t2)
        fresh = [_fresh_process_load(Path(tmp) / "model") for _ in range(5)]
    for text in texts[:50]:  # warm caches
        model.predict(text)
    load_before = os.getloadavg()[0]
    times, cpu_times = [], []
    for text in texts:
        t3 = time.perf_counter()
        c3 = time.thread_time()
        model.predict(text)
        cpu_times.append(time.thread_time() - c3)
        times.append(time.perf_counter() - t3)
    ms = np.array(times) * 1000
    cpu_ms = np.array(cpu_times) * 1000
    return {
        "ours_train_seconds": round(ours_train_s, 1),
        "baseline_train_seconds": round(base_train_s, 1),
        "model_load_seconds_min": round(min(loads), 3),
        "model_load_seconds_max": round(max(loads), 3),
        # a new interpreter: imports (numpy, jieba) + Classifier.load, as a server starts
        "model_load_fresh_process_seconds": [round(x, 3) for x in fresh],
        "model_load_fresh_process_seconds_median": round(float(np.median(fresh)), 3),
        "latency_messages": len(texts),
        "ours_ms_per_doc": round(float(ms.mean()), 3),
        "ours_ms_per_doc_p95": round(float(np.percentile(ms, 95)), 3),
        "ours_ms_per_doc_max": round(float(ms.max()), 3),
        "share_under_5ms": round(float(np.mean(ms < 5)), 4),
        # CPU time of the predicting thread: what the request costs, less the waiting for a core
        "ours_cpu_ms_per_doc": round(float(cpu_ms.mean()), 3),
        "ours_cpu_ms_per_doc_p95": round(float(np.percentile(cpu_ms, 95)), 3),
        "loadavg_1min_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "cpus": os.cpu_count(),
    }


def main(argv: Sequence[str] | None = None) -> int:
    _fix_path()
    from classifier.config import EXPORTABLE, FAMILIES
    from classifier.datasets import deduplicate, read_csv
    from classifier.train import TrainConfig, tokens_of, training_segmenter

    parser = argparse.ArgumentParser(description="ours vs baseline: CV, raw-text macro-F1, speed")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=TrainConfig().seed)
    parser.add_argument(
        "--families", default=",".join(FAMILIES), help="comma-separated, from " + ",".join(FAMILIES)
    )
    parser.add_argument(
        "--family",
        choices=EXPORTABLE,
        default=TrainConfig().family,
        help="model family of ours in the raw-text part and speed (default: the shipped one)",
    )
    parser.add_argument("--skip-cv", action="store_true", help="only the raw-text part and speed")
    parser.add_argument(
        "--learning-curve",
        type=_shares,
        default=[],
        metavar="SHARES",
        help="also train ours on these shares of each raw-text fold's rows, e.g. 0.25,0.5,0.75",
    )
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args(argv)
    families = [f for f in args.families.split(",") if f]
    if args.family not in families:
        families.insert(0, args.family)  # the shipped family is always measured
    data = args.data_dir
    out: dict[str, Any] = {"seed": args.seed, "folds": args.folds, "family": args.family}

    # -- data, duplicates ---------------------------------------------------------------------
    seg_set = read_csv(data / "messages_tokenized.csv")
    raw_set = read_csv(data / "messages_raw_sample.csv")
    dedup = deduplicate(seg_set.examples)
    seg = dedup.examples
    raw_dedup = deduplicate(raw_set.examples)
    raw = raw_dedup.examples
    pool_texts, pool_sources = read_unlabeled(data)
    segmenter = training_segmenter()
    t0 = time.perf_counter()
    seg_tokens = [tokens_of(segmenter, e) for e in seg]
    raw_tokens = [segmenter.tokens(e.text) for e in raw]
    pool_tokens = [segmenter.tokens(t) for t in pool_texts]
    out["data"] = {
        "tokenized_rows": seg_set.rows,
        "tokenized_after_dedup": len(seg),
        "tokenized_exact_duplicates": dedup.duplicates,
        "tokenized_conflicting_rows_dropped": dedup.conflicts,
        "raw_sample_rows": raw_set.rows,
        "raw_sample_after_dedup": len(raw),
        "raw_sample_conflicting_rows_dropped": raw_dedup.conflicts,
        "unlabeled_distinct_messages": len(pool_texts),
        "preprocess_seconds": round(time.perf_counter() - t0, 1),
    }
    say(
        f"数据: tokenized {seg_set.rows} 行，去重后 {len(seg)}（完全重复 {dedup.duplicates}，"
        f"标签冲突 {dedup.conflicts}）；raw sample {raw_set.rows} 行，去掉标签冲突后 {len(raw)}；"
        f"未标注原始消息 {len(pool_texts)} 条（去重）"
    )
    if not args.skip_cv:
        out["cv"] = cross_validate(seg, seg_tokens, families, args)
    out["raw_text"] = raw_text_evaluation(
        seg, seg_tokens, raw, raw_tokens, pool_texts, pool_sources, pool_tokens, args
    )
    traffic = [t for t, s in zip(pool_texts, pool_sources, strict=True) if s == UNLABELED_FILES[0]]
    out["speed"] = speed(seg_set, raw_set, traffic, args)

    # -- summary ------------------------------------------------------------------------------
    rt = out["raw_text"]
    best_raw = max(BASELINES, key=lambda n: rt[n]["macro_f1"])
    out["summary"] = {
        "raw_ours": rt["ours"]["macro_f1"],
        "raw_baseline_best": rt[best_raw]["macro_f1"],
        "raw_gain": round(rt["ours"]["macro_f1"] - rt[best_raw]["macro_f1"], 4),
    }
    say("")
    header = (
        f"{'':28s} {'CV macro-F1 (tokenized)':>24s} {'raw-text macro-F1':>18s} {'accuracy':>9s}"
    )
    say(header)
    cv = out.get("cv", {}).get("macro_f1", {})
    for name in ("ours", *BASELINES):
        cv_text = f"{cv[name]['mean']:.4f} ±{cv[name]['std']:.4f}" if name in cv else "-"
        say(f"{name:28s} {cv_text:>24s} {rt[name]['macro_f1']:>18.4f} {rt[name]['accuracy']:>9.4f}")
    if cv:
        best_cv = max(cv[n]["mean"] for n in BASELINES)
        out["summary"].update(
            {
                "cv_ours": cv["ours"]["mean"],
                "cv_baseline_best": best_cv,
                "cv_gain": round(cv["ours"]["mean"] - best_cv, 4),
            }
        )
        say("CV, all families: " + ", ".join(f"{n} {v['mean']:.4f}" for n, v in cv.items()))
    say(
        "raw-text parts (raw sample / unlabeled copies): "
        + ", ".join(
            f"{n} {rt[n]['raw_sample']:.4f} / {rt[n]['unlabeled_copies']:.4f}"
            for n in ("ours", *BASELINES)
        )
    )
    same = rt["ours_same_messages"]
    say(
        f"ours on the same {same['n']} held-out messages: raw text "
        f"{same['raw_text_macro_f1']:.4f}, their segmented copies "
        f"{same['segmented_copy_macro_f1']:.4f} (same label {same['same_label_share']:.1%})"
    )
    if "learning_curve" in rt:
        say(
            "raw-text macro-F1 by share of training rows: "
            + ", ".join(f"{k} {v:.4f}" for k, v in rt["learning_curve"].items())
        )
    gain = rt["gain_vs_" + best_raw]
    say(
        f"raw-text gain vs {best_raw}: {gain['gain']:+.4f} "
        f"(95% CI {gain['ci95'][0]:+.4f} … {gain['ci95'][1]:+.4f}; "
        f"only ours right {gain['only_ours_right']}, only baseline right "
        f"{gain['only_theirs_right']})"
    )
    say(f"{'per-class F1, raw text':28s} {'ours':>8s} {best_raw:>22s}")
    for label, f1 in rt["ours"]["per_class_f1"].items():
        say(f"{label:28s} {f1:>8.4f} {rt[best_raw]['per_class_f1'][label]:>22.4f}")
    sp = out["speed"]
    say(
        f"ms/doc ours {sp['ours_ms_per_doc']} (p95 {sp['ours_ms_per_doc_p95']}, "
        f"max {sp['ours_ms_per_doc_max']}, {sp['latency_messages']} messages, load average "
        f"{sp['loadavg_1min_before_after']} on {sp['cpus']} CPUs); model load "
        f"{sp['model_load_seconds_min']}–{sp['model_load_seconds_max']} s (new process, with "
        f"imports: median {sp['model_load_fresh_process_seconds_median']} s); CPU ms/doc "
        f"{sp['ours_cpu_ms_per_doc']} (p95 {sp['ours_cpu_ms_per_doc_p95']}); train ours "
        f"{sp['ours_train_seconds']} s vs baseline {sp['baseline_train_seconds']} s"
    )
    line = json.dumps(out, ensure_ascii=False)
    if args.json_out:
        args.json_out.write_text(line + "\n", encoding="utf-8")
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
