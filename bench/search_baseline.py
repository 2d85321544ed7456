#!/usr/bin/env python3
"""The retrieval baseline `hotline kb eval` must beat: plain TF-IDF cosine over the replies.

Same task and output as `hotline kb eval --data CSV`: every reply of the file is a document,
each message's subject + detail the query, the reply it got the one to find (replies with the
same text count alike); prints one JSON object with mrr_at_10, recall_at_5, n, p95_ms.
Replies and queries are cut with plain jieba (default dictionary, nothing removed, accurate
mode); scikit-learn's TfidfVectorizer with its defaults but that tokenizer (l2-normalised,
smooth idf), cosine similarity by a sparse dot product.

    .venv/bin/python bench/search_baseline.py --data ../shared/data/tipdm/replies.csv
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> int:
    from classifier.text import jieba_tokenizer
    from kb.eval import percentile, read_pairs

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, type=Path)
    args = parser.parse_args()
    pairs = read_pairs(args.data)

    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer

    jieba = jieba_tokenizer()  # plain jieba: the default dictionary, no user words

    def cut(text: str) -> list[str]:
        return [w for w in jieba.lcut(text) if w.strip()]

    vectorizer = TfidfVectorizer(tokenizer=cut, lowercase=False, token_pattern=None)
    docs = vectorizer.fit_transform([p.reply for p in pairs])
    same: dict[str, int] = {}
    group = [same.setdefault(p.reply.strip(), i) for i, p in enumerate(pairs)]
    rr = 0.0
    found5 = 0
    took = []
    for i, p in enumerate(pairs):
        start = time.perf_counter()
        scores = (vectorizer.transform([f"{p.subject}\n{p.detail}"]) @ docs.T).toarray()[0]
        top = np.argsort(-scores, kind="stable")[:10]
        took.append((time.perf_counter() - start) * 1000)
        for rank, j in enumerate(top, 1):
            if group[j] == group[i]:
                rr += 1 / rank
                found5 += rank <= 5
                break
    n = len(pairs)
    result = {
        "mrr_at_10": round(rr / n, 4),
        "recall_at_5": round(found5 / n, 4),
        "n": n,
        "p95_ms": round(percentile(took, 95), 2),
        "backend": "tfidf-cosine",
    }
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
