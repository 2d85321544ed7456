#!/usr/bin/env python3
"""Classifier benchmark: ours vs the TF-IDF + LinearSVC baseline on the TipDM data.

Prints, for the shipped pipeline (classifier/) and for bench/baseline.py:
  1. stratified k-fold cross-validated macro-F1 on messages_tokenized.csv (de-duplicated), with
     the model families compared on the same folds and features (svc, lr, sgd, ridge, cnb, and
     an average of the calibrated svc/sgd/ridge probabilities), and svc without the head block;
  2. macro-F1 on the RAW text of messages_raw_sample.csv after training on the tokenized set,
     once as given (leaky: almost every sample message is also in the tokenized set) and once
     with those overlapping messages removed from training (the honest figure);
  3. ms per document (one request at a time, as the server calls it) and training time.
Overlap and duplicates between the two files are detected and reported. Fixed seeds throughout.

Run from the repository root (reads ../shared/data/tipdm, takes ~10 minutes on 2 cores):

    .venv/bin/python bench/classifier.py
    .venv/bin/python bench/classifier.py --families svc --folds 5     # quicker
    .venv/bin/python bench/classifier.py --json-out /tmp/classifier-bench.json

The last line of output is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
DEFAULT_DATA = REPO.parent / "shared" / "data" / "tipdm"
OVERLAP_JACCARD = 0.5  # token-set similarity above which two messages are the same message


def _fix_path() -> None:
    # `python bench/classifier.py` puts bench/ first on sys.path, where this very file would
    # shadow the classifier package; the repository root must come first.
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]
    sys.path.insert(0, str(REPO))
    sys.path.append(str(BENCH))


def find_overlap(
    raw_tokens: Sequence[Sequence[str]], seg_tokens: Sequence[Sequence[str]]
) -> list[int | None]:
    """For each raw message, the index of the same message in the segmented set (or None)."""
    sets = [frozenset(t) for t in seg_tokens]
    index: defaultdict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(sets):
        for w in s:
            index[w].append(i)
    matches: list[int | None] = []
    for tokens in raw_tokens:
        s = frozenset(tokens)
        votes: Counter[int] = Counter()
        for w in s:
            postings = index.get(w, ())
            if len(postings) < 300:  # rare words find the candidates
                votes.update(postings)
        best, best_j = None, 0.0
        for i, _ in votes.most_common(30):
            j = len(s & sets[i]) / len(s | sets[i])
            if j > best_j:
                best, best_j = i, j
        matches.append(best if best_j >= OVERLAP_JACCARD else None)
    return matches


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


def main(argv: Sequence[str] | None = None) -> int:
    _fix_path()
    import numpy as np
    from baseline import Baseline
    from sklearn.metrics import f1_score
    from sklearn.model_selection import StratifiedKFold

    from classifier.config import FAMILIES
    from classifier.datasets import deduplicate, read_csv
    from classifier.features import (
        FeatureMatrixBuilder,
        export_estimator,
        make_estimator,
    )
    from classifier.model import Classifier
    from classifier.taxonomy import Taxonomy
    from classifier.text import STOPWORDS_PATH, USERDICT_PATH, Segmenter
    from classifier.train import TrainConfig, evaluate, fit_tokens, tokens_of, train

    parser = argparse.ArgumentParser(description="ours vs baseline, macro-F1 and speed")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=TrainConfig().seed)
    parser.add_argument(
        "--families", default=",".join(FAMILIES), help="comma-separated, from " + ",".join(FAMILIES)
    )
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args(argv)
    families = [f for f in args.families.split(",") if f]
    if "svc" not in families:
        families.insert(0, "svc")  # the shipped family is always measured
    config = TrainConfig(seed=args.seed)
    data = args.data_dir
    out: dict[str, Any] = {"seed": args.seed, "folds": args.folds}

    def say(text: str) -> None:
        print(text, flush=True)

    # -- data, duplicates, overlap ----------------------------------------------------------
    seg_set = read_csv(data / "messages_tokenized.csv")
    raw_set = read_csv(data / "messages_raw_sample.csv")
    dedup = deduplicate(seg_set.examples)
    seg = dedup.examples
    raw_dedup = deduplicate(raw_set.examples)
    segmenter = Segmenter(USERDICT_PATH, STOPWORDS_PATH)
    t0 = time.perf_counter()
    seg_tokens = [tokens_of(segmenter, e) for e in seg]
    raw_tokens = [segmenter.tokens(e.text) for e in raw_set.examples]
    prep_s = time.perf_counter() - t0
    matches = find_overlap(raw_tokens, seg_tokens)
    overlap_seg = {m for m in matches if m is not None}
    label_agree = sum(
        1
        for e, m in zip(raw_set.examples, matches, strict=True)
        if m is not None and seg[m].label == e.label
    )
    out["data"] = {
        "tokenized_rows": seg_set.rows,
        "tokenized_after_dedup": len(seg),
        "tokenized_exact_duplicates": dedup.duplicates,
        "tokenized_conflicting_rows_dropped": dedup.conflicts,
        "raw_sample_rows": raw_set.rows,
        "raw_sample_exact_duplicates": raw_dedup.duplicates,
        "raw_sample_conflicting_rows": raw_dedup.conflicts,
        "raw_rows_also_in_tokenized": sum(m is not None for m in matches),
        "tokenized_rows_matched": len(overlap_seg),
        "matched_label_agreement": label_agree,
        "preprocess_seconds": round(prep_s, 1),
    }
    say(
        f"数据: tokenized {seg_set.rows} 行，去重后 {len(seg)}（完全重复 {dedup.duplicates}，"
        f"标签冲突 {dedup.conflicts}）；raw sample {raw_set.rows} 行（重复 {raw_dedup.duplicates}，"
        f"冲突 {raw_dedup.conflicts}，即 id 37042）"
    )
    say(
        f"重叠: raw sample 中 {out['data']['raw_rows_also_in_tokenized']} 条也在 tokenized 中"
        f"（Jaccard ≥ {OVERLAP_JACCARD}），其中标签一致 {label_agree} 条"
    )

    # -- cross-validation ---------------------------------------------------------------------
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
        for family in families:
            est = make_estimator(family, args.seed, min_count).fit(X_tr, y[tr])
            cv_scores[family].append(f1_score(y[te], est.predict(X_te), average="macro"))
            if family in ("svc", "sgd", "ridge"):
                probas[family] = est.predict_proba(X_te)
            if family == "svc":
                # the shipped, exported scorer must give the same answers as scikit-learn
                served = Classifier(
                    builder.export(),
                    export_estimator(est),
                    segmenter,
                    Taxonomy({}),
                    {},
                    {},
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
                    cv_scores["svc_without_head"].append(
                        f1_score(y[te], plain.predict(X_te[:, :n_body]), average="macro")
                    )
        if len(probas) == 3:
            avg = sum(probas.values())
            cv_scores["ens(svc+sgd+ridge)"].append(
                f1_score(y[te], classes[np.argmax(avg, axis=1)], average="macro")
            )
        for keep_single in (False, True):
            name = "baseline" + ("_keep_single" if keep_single else "")
            base = Baseline(keep_single, args.seed).fit([docs[i] for i in tr], y[tr])
            cv_scores[name].append(
                f1_score(y[te], base.predict([docs[i] for i in te]), average="macro")
            )
        say(
            f"fold {k + 1}/{args.folds}: "
            + ", ".join(f"{n} {v[-1]:.4f}" for n, v in cv_scores.items())
            + f" ({time.perf_counter() - started:.0f}s)"
        )
    out["cv_macro_f1"] = {
        n: {"mean": round(float(np.mean(v)), 4), "std": round(float(np.std(v)), 4)}
        for n, v in cv_scores.items()
    }
    out["served_vs_sklearn_agreement"] = round(float(np.mean(served_agreement)), 6)

    # -- train on tokenized, evaluate on raw text ------------------------------------------
    raw_docs = [(e.text, "raw") for e in raw_set.examples]
    raw_y = [e.label for e in raw_set.examples]
    raw_eval: dict[str, Any] = {}
    for setting, keep in (
        ("as_given_leaky", list(range(len(seg)))),
        ("overlap_removed", [i for i in range(len(seg)) if i not in overlap_seg]),
    ):
        ours = fit_tokens(
            [seg_tokens[i] for i in keep],
            [seg[i].label for i in keep],
            config,
            segmenter,
            Taxonomy({}),
            {},
        )
        report = evaluate(ours, raw_set.examples)
        ours_pred = [ours.predict(e.text).label for e in raw_set.examples]
        base_scores = {}
        base_preds = {}
        for keep_single in (False, True):
            name = "baseline" + ("_keep_single" if keep_single else "")
            base = Baseline(keep_single, args.seed).fit([docs[i] for i in keep], y[keep])
            base_preds[name] = base.predict(raw_docs)
            base_scores[name] = round(float(f1_score(raw_y, base_preds[name], average="macro")), 4)
        raw_eval[setting] = {
            "train_rows": len(keep),
            "ours": report["macro_f1"],
            "ours_accuracy": report["accuracy"],
            **base_scores,
        }
        if setting == "overlap_removed":
            strongest = max(base_scores, key=lambda n: base_scores[n])
            raw_eval[setting]["gain_vs_" + strongest] = paired_bootstrap(
                raw_y, ours_pred, base_preds[strongest], seed=args.seed
            )
            raw_eval[setting]["ours_per_class_f1"] = {
                c: v["f1"] for c, v in report["per_class"].items()
            }
            # the same messages in their tokenized form: does raw text land in the same place?
            twins = [(i, m) for i, m in enumerate(matches) if m is not None]
            raw_top = ours.top_labels([raw_tokens[i] for i, _ in twins])
            seg_top = ours.top_labels([seg_tokens[m] for _, m in twins])
            raw_eval[setting]["raw_vs_tokenized_twin_agreement"] = round(
                float(np.mean([a[0][0] == b[0][0] for a, b in zip(raw_top, seg_top, strict=True)])),
                4,
            )
            raw_eval[setting]["ms_per_doc"] = report["ms_per_doc"]
            raw_eval[setting]["ms_per_doc_p95"] = report["ms_per_doc_p95"]
            base = Baseline(True, args.seed).fit([docs[i] for i in keep], y[keep])
            times = []
            for doc in raw_docs:
                t1 = time.perf_counter()
                base.predict([doc])
                times.append(time.perf_counter() - t1)
            raw_eval[setting]["baseline_ms_per_doc"] = round(float(np.mean(times)) * 1000, 3)
        say(f"raw sample ({setting}): {json.dumps(raw_eval[setting], ensure_ascii=False)}")
    out["raw_sample_macro_f1"] = raw_eval

    # -- training time of the shipped recipe ---------------------------------------------------
    t2 = time.perf_counter()
    model = train(
        [seg_set, raw_set],
        taxonomy=data / "taxonomy.csv",
        config=TrainConfig(seed=args.seed, holdout=0),
    )
    ours_train_s = time.perf_counter() - t2
    t3 = time.perf_counter()
    Baseline(True, args.seed).fit(docs + raw_docs, list(y) + raw_y)
    base_train_s = time.perf_counter() - t3
    texts = [e.text for e in raw_set.examples]
    for text in texts[:20]:  # warm caches
        model.predict(text)
    times = []
    for text in texts:
        t4 = time.perf_counter()
        model.predict(text)
        times.append(time.perf_counter() - t4)
    ms = np.array(times) * 1000
    out["speed"] = {
        "ours_train_seconds": round(ours_train_s, 1),
        "baseline_train_seconds": round(base_train_s, 1),
        "ours_ms_per_doc": round(float(ms.mean()), 3),
        "ours_ms_per_doc_p95": round(float(np.percentile(ms, 95)), 3),
        "ours_ms_per_doc_max": round(float(ms.max()), 3),
    }

    # -- summary ------------------------------------------------------------------------------
    cv = out["cv_macro_f1"]
    best_base = max(cv["baseline"]["mean"], cv["baseline_keep_single"]["mean"])
    clean = raw_eval["overlap_removed"]
    best_base_raw = max(clean["baseline"], clean["baseline_keep_single"])
    exportable = {n: v for n, v in cv.items() if n in ("svc", "lr", "sgd", "ridge")}
    out["summary"] = {
        "cv_ours": cv["ours"]["mean"],
        "cv_baseline_best": best_base,
        "cv_gain": round(cv["ours"]["mean"] - best_base, 4),
        "raw_ours": clean["ours"],
        "raw_baseline_best": best_base_raw,
        "raw_gain": round(clean["ours"] - best_base_raw, 4),
        "best_exportable_family": max(exportable, key=lambda n: exportable[n]["mean"]),
        "cv_folds_won": sum(
            o > max(b1, b2)
            for o, b1, b2 in zip(
                cv_scores["ours"],
                cv_scores["baseline"],
                cv_scores["baseline_keep_single"],
                strict=True,
            )
        ),
    }
    if "svc_without_head" in cv_scores:
        out["summary"]["head_block_folds_won"] = sum(
            a > b for a, b in zip(cv_scores["svc"], cv_scores["svc_without_head"], strict=True)
        )
    say("")
    say(f"{'model':24s} {'CV macro-F1':>14s}")
    for name, v in cv.items():
        say(f"{name:24s} {v['mean']:.4f} ±{v['std']:.4f}")
    say(
        f"raw sample, overlap removed: ours {clean['ours']:.4f}, baseline {clean['baseline']:.4f}"
        f" / keep-single {clean['baseline_keep_single']:.4f}"
    )
    gain = next(v for k, v in clean.items() if k.startswith("gain_vs_"))
    say(
        f"raw gain {gain['gain']:+.4f} (95% CI {gain['ci95'][0]:+.4f} … {gain['ci95'][1]:+.4f}); "
        f"CV: ours ahead in {out['summary']['cv_folds_won']}/{args.folds} folds"
    )
    leaky = raw_eval["as_given_leaky"]
    say(
        f"raw sample, as given (leaky): ours {leaky['ours']:.4f}, baseline {leaky['baseline']:.4f}"
        f" / keep-single {leaky['baseline_keep_single']:.4f}"
    )
    say(
        f"ms/doc ours {out['speed']['ours_ms_per_doc']} (p95 {out['speed']['ours_ms_per_doc_p95']})"
        f", train ours {ours_train_s:.1f}s vs baseline {base_train_s:.1f}s"
    )
    line = json.dumps(out, ensure_ascii=False)
    if args.json_out:
        args.json_out.write_text(line + "\n", encoding="utf-8")
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
