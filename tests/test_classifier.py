"""Classifier: normalisation, segmentation, CSV input, training, artifacts, CLI, promotion.

Self-contained: trains on the made-up messages in tests/fixtures/classifier, never reads
../shared/data. No timing assertions (ms_per_doc is printed by `eval`, not checked).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import shutil
import subprocess
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from classifier import artifact, cli
from classifier.artifact import ArtifactError
from classifier.config import DEFAULT_MODEL_DIR
from classifier.dagcut import DagCutter
from classifier.datasets import DataError, Example, Form, deduplicate, read_csv
from classifier.features import (
    FeatureMatrixBuilder,
    FeatureSpec,
    export_estimator,
    make_estimator,
)
from classifier.kind import RequestKind, suggest_kind
from classifier.lexicon import (
    derive_stopwords,
    dictionary_text,
    place_names,
    read_jieba_dictionary,
    trim_dictionary,
)
from classifier.model import Classifier, Prediction
from classifier.taxonomy import Taxonomy
from classifier.text import (
    USERDICT_PATH,
    Segmenter,
    ensure_dictionary,
    jieba_tokenizer,
    normalize,
    read_dictionary,
    read_word_list,
)
from classifier.train import TrainConfig, compare_and_promote, evaluate, train

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "classifier"
TRAIN_RAW = FIXTURES / "train_raw.csv"
TRAIN_SEGMENTED = FIXTURES / "train_segmented.csv"
EVAL_RAW = FIXTURES / "eval_raw.csv"
TAXONOMY = FIXTURES / "taxonomy.csv"
SHIPPED = REPO / "classifier" / "model"
CONFIG = TrainConfig(holdout=0.0)
SAMPLES = [
    "投诉：包头市昆都仑区某小区冬天暖气不热，供热公司不处理。",
    "请问鄂尔多斯市社保卡丢了怎么补办？",
    "举报达尔罕茂明安联合旗一家工厂夜里向河道排放污水",
    "建议在学校附近增加公办幼儿园学位",
    "",
]


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def segmenter() -> Segmenter:
    return Segmenter()


@pytest.fixture(scope="module")
def trained() -> Classifier:
    return train([TRAIN_RAW, TRAIN_SEGMENTED], taxonomy=TAXONOMY, config=CONFIG)


@pytest.fixture(scope="module")
def model_dir(trained: Classifier, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("model") / "model"
    trained.save(out)
    return out


@pytest.fixture(scope="module")
def bad_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model trained on deliberately wrong labels: each class renamed to the next one."""
    examples = read_csv(TRAIN_RAW).examples + read_csv(TRAIN_SEGMENTED).examples
    classes = sorted({e.label for e in examples})
    shift = {c: classes[(i + 1) % len(classes)] for i, c in enumerate(classes)}
    wrong = [Example(e.text, shift[e.label], e.form) for e in examples]
    out = tmp_path_factory.mktemp("bad") / "model"
    train([], wrong, taxonomy=TAXONOMY, config=CONFIG).save(out)
    return out


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _write_csv(
    path: Path, header: list[str], rows: list[list[str]], encoding: str = "utf-8"
) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    path.write_text(buffer.getvalue(), encoding=encoding)
    return path


# -- normalisation and segmentation -----------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ＡＢＣ１２３，Ｘ", "ABC123,X"),  # full-width letters, digits, punctuation
        ("供暖\u3000不热\xa0请\t\t处理", "供暖 不热 请 处理"),  # ideographic / no-break space
        ("  前后空白  ", "前后空白"),
        ("标题\r\n\r\n  正文第一段\n\n第二段", "标题\n正文第一段\n第二段"),
        ("第一行_x000D_第二行", "第一行\n第二行"),  # spreadsheet carriage-return escape
        ("零\u200b宽\ufeff字符", "零宽字符"),
        ("物业&nbsp;收费&amp;停车", "物业 收费&停车"),  # scraped HTML entities
        ("", ""),
    ],
)
def test_normalize_cases_give_canonical_text(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


def test_normalize_is_idempotent() -> None:
    text = "ＡＢ\u3000C\xa0\r\n正文"
    assert normalize(normalize(text)) == normalize(text)


@pytest.mark.parametrize(
    "name", ["鄂尔多斯市", "达尔罕茂明安联合旗", "科尔沁左翼中旗", "莫力达瓦达斡尔族自治旗"]
)
def test_segmenter_user_dictionary_keeps_place_names_whole(segmenter: Segmenter, name: str) -> None:
    assert name in segmenter.cut(f"我住在{name}，想反映一个问题")


def test_segmenter_user_dictionary_is_what_keeps_them_whole(segmenter: Segmenter) -> None:
    plain = Segmenter(userdict=None, stopwords=None)
    for name in ("察哈尔右翼前旗", "巴彦淖尔市", "康巴什区"):
        text = f"{name}某小区供暖不热"
        assert name not in plain.cut(text)  # plain jieba splits these
        assert name in segmenter.cut(text)


def test_segmenter_user_dictionary_keeps_service_terms_whole(segmenter: Segmenter) -> None:
    assert "住房公积金" in segmenter.cut("住房公积金怎么提取")
    assert "城乡居民医保" in segmenter.cut("城乡居民医保缴费")


def test_userdict_contains_every_directory_place_name() -> None:
    names = place_names(REPO / "routing" / "directory.toml")
    assert "达尔罕茂明安联合旗" in names
    assert set(names) <= set(read_word_list(USERDICT_PATH))


def test_segmenter_tokens_drop_punctuation_and_stopwords(segmenter: Segmenter) -> None:
    tokens = segmenter.tokens("我们的小区，暖气不热！")
    assert "，" not in tokens and "！" not in tokens
    assert "的" not in tokens and "我们" not in tokens
    assert "小区" in tokens


def test_segmenter_retokenize_joins_user_terms_split_elsewhere(segmenter: Segmenter) -> None:
    assert segmenter.retokenize("鄂尔多斯 市 住房 公积金 的 提取") == [
        "鄂尔多斯市",
        "住房公积金",
        "提取",
    ]


def test_segmenter_merge_takes_longest_term_and_leaves_false_starts(tmp_path: Path) -> None:
    userdict = tmp_path / "userdict.txt"
    userdict.write_text("甲乙丙\n甲乙\n丁戊\n", encoding="utf-8")
    seg = Segmenter(userdict=userdict, stopwords=[])
    # 甲 starts a term but "甲 丁" spells none; 乙 and 丙 start no term at all
    assert seg.retokenize("甲 乙 丙 甲 丁 戊 乙 丙 甲 乙") == [
        "甲乙丙",
        "甲",
        "丁戊",
        "乙",
        "丙",
        "甲乙",
    ]


def test_derive_stopwords_finds_words_missing_from_segmented_corpus(segmenter: Segmenter) -> None:
    raw = ["我们的小区暖气不热"] * 3 + ["我们的道路坑洼"] * 3
    segmented = ["小区 暖气 不热", "道路 坑洼"]
    words = derive_stopwords(raw, segmented, segmenter.cut, min_df=3)
    assert "的" in words and "我们" in words
    assert "小区" not in words and "道路" not in words


def test_derive_stopwords_compares_case_as_written(segmenter: Segmenter) -> None:
    # TipDM: the segmented set lost the anonymised "A" of A市 but kept lower-case "a"
    raw = ["A市小区暖气不热"] * 3 + ["a类小区道路坑洼"] * 3
    segmented = ["市 小区 暖气 不热", "a 类 小区 道路 坑洼"]
    words = derive_stopwords(raw, segmented, segmenter.cut, min_df=3)
    assert "A" in words
    assert "a" not in words


def test_segmenter_matches_stopwords_with_capitals_case_sensitively() -> None:
    seg = Segmenter(stopwords=["A", "的"])
    assert seg.stopwords == {"的"} and seg.cased_stopwords == {"A"}
    assert seg.tokens("A市的A3区") == ["市", "a3", "区"]
    assert "a" in seg.tokens("a类小区")  # only "A" as written is a stop word
    assert seg.retokenize("A 市 小区") == ["市", "小区"]


# -- the trimmed jieba dictionary --------------------------------------------------------------


@pytest.fixture(scope="module")
def full_dictionary() -> tuple[dict[str, int], int]:
    import jieba

    return read_jieba_dictionary(Path(jieba.__file__).with_name("dict.txt"))


def _fixture_texts() -> list[str]:
    return [normalize(e.text) for path in (TRAIN_RAW, EVAL_RAW) for e in read_csv(path).examples]


def test_trimmed_dictionary_segments_its_texts_like_full_jieba(
    segmenter: Segmenter,
    full_dictionary: tuple[dict[str, int], int],
    tmp_path: Path,
) -> None:
    entries, total = full_dictionary
    texts = _fixture_texts() + SAMPLES
    kept = trim_dictionary(entries, [*texts, *read_word_list(USERDICT_PATH)])
    assert 0 < len(kept) < len(entries) // 10
    path = tmp_path / "dict.txt"
    path.write_text(dictionary_text(kept, total, ["test"]), encoding="utf-8")
    trimmed = Segmenter(dictionary=path)
    for text in texts:
        assert trimmed.cut(text) == segmenter.cut(text)
        assert trimmed.tokens(text) == segmenter.tokens(text)


def test_shipped_dictionary_segments_in_vocabulary_text_like_full_jieba(
    segmenter: Segmenter, full_dictionary: tuple[dict[str, int], int]
) -> None:
    shipped, _ = read_dictionary(ensure_dictionary())
    trimmed = Segmenter(dictionary=ensure_dictionary())
    texts = _fixture_texts() + SAMPLES[:-1]
    in_vocabulary = [
        t for t in texts if trim_dictionary(full_dictionary[0], [t]).keys() <= shipped.keys()
    ]
    assert len(in_vocabulary) >= len(texts) // 2  # the test is not vacuous
    for text in in_vocabulary:
        assert trimmed.tokens(text) == segmenter.tokens(text)


def test_shipped_dictionary_keeps_the_full_total_and_every_prefix(
    full_dictionary: tuple[dict[str, int], int],
) -> None:
    entries, total = full_dictionary
    freq, shipped_total = read_dictionary(ensure_dictionary())
    assert shipped_total == total
    assert all(word[:i] in freq for word in freq for i in range(1, len(word)))
    words = {w: f for w, f in freq.items() if f > 0}
    assert all(entries[w] == f for w, f in words.items())
    assert len(words) < len(entries) // 2


def test_read_dictionary_refuses_a_file_without_total(tmp_path: Path) -> None:
    path = tmp_path / "dict.txt"
    path.write_text("供暖 100\n小区 50\n", encoding="utf-8")
    with pytest.raises(ValueError, match="dictionary"):
        read_dictionary(path)


def test_dictionary_segmenter_never_reads_jieba_default_dictionary(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import jieba

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("jieba's own dictionary was read")

    monkeypatch.setattr(jieba.Tokenizer, "initialize", refuse)
    monkeypatch.setattr(jieba.Tokenizer, "gen_pfdict", refuse)
    monkeypatch.setattr(jieba.Tokenizer, "get_dict_file", refuse)
    assert "暖气" in Segmenter(dictionary=ensure_dictionary()).tokens("小区暖气不热")
    clf = Classifier.load(model_dir)
    assert clf.predict(SAMPLES[0]).label


def test_cli_dictionary_writes_a_loadable_trimmed_dictionary(
    segmenter: Segmenter, tmp_path: Path
) -> None:
    words = tmp_path / "words.txt"
    argv = ["dictionary", "--raw", str(TRAIN_RAW), "--segmented", str(TRAIN_SEGMENTED)]
    assert cli.main([*argv, "--taxonomy", str(TAXONOMY), "--out", str(words)]) == 0
    assert " " not in words.read_text(encoding="utf-8").split("\n")[-2]  # words, no frequencies
    out = ensure_dictionary(tmp_path / "dict.txt", words)  # + the installed jieba's data
    freq, _ = read_dictionary(out)
    assert freq["暖气"] > 0 and "鄂尔多斯" in freq
    text = normalize(read_csv(TRAIN_RAW).examples[0].text)
    assert Segmenter(dictionary=out).tokens(text) == segmenter.tokens(text)


TRICKY = [
    "",
    "   ",
    "A市A3区的路灯不亮了！！请尽快处理。\r\n谢谢",
    "COVID-19疫情期间，3.5%的商户、B2B平台和www.example.com都受影响",
    "达尔罕茂明安联合旗百灵庙镇牧民反映嘎查道路坑洼",
    "噼里啪啦咕噜咕噜嘿嘿哈哈呜呜",  # runs of single characters the HMM joins
    "我我我我我我我我我我",
    "《关于进一步做好稳就业工作的意见》第3条\t第二款",
    "α β γ ①②③ ㈠ 🙂 emoji 和 ＡＢＣ全角",
]


@pytest.mark.parametrize("dictionary", [None, ensure_dictionary()], ids=["full", "trimmed"])
def test_dag_cutter_gives_jiebas_words(dictionary: Path | None) -> None:
    tokenizer = jieba_tokenizer(USERDICT_PATH, dictionary=dictionary)
    cutter = DagCutter(tokenizer)
    texts = TRICKY + SAMPLES + [e.text for p in (TRAIN_RAW, EVAL_RAW) for e in read_csv(p).examples]
    for text in texts:
        assert list(cutter.cut(text)) == list(tokenizer.cut(text)), text
        assert list(cutter.cut(normalize(text))) == list(tokenizer.cut(normalize(text))), text


def test_shipped_stopwords_drop_the_anonymised_city_letter(segmenter: Segmenter) -> None:
    assert segmenter.tokens("A市A3区某小区") == ["市", "a3", "区", "小区"]


# -- kind -------------------------------------------------------------------------------------


def test_request_kind_codes_match_tickets_kind() -> None:
    from tickets.model import Kind

    assert {k.value for k in RequestKind} == {k.value for k in Kind}


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("请问社保卡怎么补办？", "consult"),
        ("咨询公积金提取条件", "consult"),
        ("举报某工厂夜间偷排污水", "report"),
        ("投诉小区物业乱收费", "complaint"),
        ("反映小区供暖不热的问题\n感谢您百忙之中查看", "complaint"),
        ("建议在学校门口设置红绿灯", "suggestion"),
        ("表扬赛罕区人社局工作人员热情服务", "praise"),
        ("求助：家中老人生病无钱医治", "help"),
        ("今天天气不错", "other"),
    ],
)
def test_suggest_kind_rules(text: str, kind: str) -> None:
    assert suggest_kind(text).kind.value == kind


def test_suggest_kind_title_outweighs_body() -> None:
    guess = suggest_kind("投诉某公司拖欠工资\n请问怎么办？如何维权？")
    assert guess.kind is RequestKind.COMPLAINT
    assert "投诉" in guess.cues


# -- CSV input --------------------------------------------------------------------------------


def test_read_csv_raw_form_ignores_extra_columns() -> None:
    data = read_csv(TRAIN_RAW)
    assert data.form is Form.RAW
    assert data.rows == len(data.examples) == 32
    first = data.examples[0]
    assert first.text.startswith("小区冬季供暖不热\n呼和浩特市")
    assert first.label == "城乡建设"
    assert len(data.sha256) == 64


def test_read_csv_accepts_tokens_or_text_column(tmp_path: Path) -> None:
    assert read_csv(TRAIN_SEGMENTED).form is Form.SEGMENTED
    path = _write_csv(tmp_path / "t.csv", ["text", "label", "x"], [["小区 暖气", "城乡建设", "1"]])
    data = read_csv(path)
    assert data.form is Form.SEGMENTED
    assert data.examples == [Example("小区 暖气", "城乡建设", Form.SEGMENTED)]


def test_read_csv_custom_label_column_and_gb18030(tmp_path: Path) -> None:
    path = _write_csv(
        tmp_path / "g.csv", ["subject", "detail", "类别"], [["暖气", "不热", "城乡建设"]], "gb18030"
    )
    assert read_csv(path, label_column="类别").examples[0].label == "城乡建设"


def test_read_csv_skips_rows_without_text_or_label(tmp_path: Path) -> None:
    rows = [["暖气", "不热", "城乡建设"], ["", "", "城乡建设"], ["噪音", "扰民", ""]]
    data = read_csv(_write_csv(tmp_path / "s.csv", ["subject", "detail", "label"], rows))
    assert len(data.examples) == 1 and data.skipped_empty == 2


@pytest.mark.parametrize(
    ("header", "rows", "label_column", "message"),
    [
        (["subject", "detail"], [["a", "b"]], "label", "没有标签列 “label”"),
        (["title", "label"], [["a", "城乡建设"]], "label", "缺少文本列"),
        (["text", "label"], [], "label", "没有可用的数据行"),
        (["text", "label"], [["小区", "城乡建设"]], "category", "没有标签列 “category”"),
    ],
)
def test_read_csv_bad_files_raise_chinese_errors(
    tmp_path: Path, header: list[str], rows: list[list[str]], label_column: str, message: str
) -> None:
    path = _write_csv(tmp_path / "bad.csv", header, rows)
    with pytest.raises(DataError, match=message):
        read_csv(path, label_column=label_column)


def test_read_csv_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="找不到数据文件"):
        read_csv(tmp_path / "nope.csv")
    (tmp_path / "empty.csv").write_text("", encoding="utf-8")
    with pytest.raises(DataError, match="是空的"):
        read_csv(tmp_path / "empty.csv")


def test_deduplicate_drops_repeats_and_contradictions() -> None:
    examples = [
        Example("小区 暖气", "城乡建设", Form.SEGMENTED),
        Example("小区  暖气", "城乡建设", Form.SEGMENTED),  # same after normalisation
        Example("医保 报销", "劳动和社会保障", Form.SEGMENTED),
        Example("医保 报销", "城乡建设", Form.SEGMENTED),
    ]
    result = deduplicate(examples)
    assert result.examples == examples[:1]
    assert (result.duplicates, result.conflicts) == (1, 2)


# -- training, prediction, artifacts ----------------------------------------------------------


def test_train_predicts_fixture_classes(trained: Classifier) -> None:
    assert trained.classes == ["劳动和社会保障", "城乡建设", "教育文体", "环境保护"]
    report = evaluate(trained, read_csv(EVAL_RAW).examples)
    assert report["n"] == 12
    assert report["macro_f1"] >= 0.75  # tiny made-up data; the real figures come from bench/


def test_prediction_has_top3_probabilities_kind_and_lower_levels(trained: Classifier) -> None:
    p = trained.predict("投诉：包头市某小区冬天暖气不热，供热公司不处理")
    assert isinstance(p, Prediction)
    assert p.label == "城乡建设"
    assert len(p.top3) == 3
    probs = [prob for _, prob in p.top3]
    assert probs == sorted(probs, reverse=True)
    assert all(0.0 <= x <= 1.0 for x in probs)
    assert p.kind == "complaint"
    assert ("城市建设和市政管理", "冬季采暖") in [(s.level2, s.level3) for s in p.third_level]
    assert "城市建设和市政管理" in [s.level2 for s in p.second_level]
    assert json.loads(json.dumps(p.to_dict(), ensure_ascii=False))["label"] == "城乡建设"


def test_probabilities_over_all_classes_sum_to_one(trained: Classifier) -> None:
    tokens = trained.segmenter.tokens("工厂排放废气污染空气")
    idx, val = trained.vectorizer.transform_one(tokens)
    assert trained.scorer.proba(idx, val).sum() == pytest.approx(1.0)


@pytest.mark.parametrize(
    "spec", [FeatureSpec(), FeatureSpec(head_tokens=0)], ids=["head", "no-head"]
)
def test_served_scorer_matches_scikit_learn(segmenter: Segmenter, spec: FeatureSpec) -> None:
    examples = read_csv(TRAIN_RAW).examples + read_csv(TRAIN_SEGMENTED).examples
    tokens = [
        segmenter.retokenize(e.text) if e.form is Form.SEGMENTED else segmenter.tokens(e.text)
        for e in examples
    ]
    labels = np.array([e.label for e in examples])
    builder = FeatureMatrixBuilder(spec)
    X = builder.fit_transform(tokens)
    assert bool(builder.export().head_terms) == (spec.head_tokens > 0)
    assert X.shape[1] == builder.export().n_features
    for family in ("svc", "ridge", "lr"):
        est = make_estimator(family, seed=1, min_class_count=4).fit(X, labels)
        vectorizer, scorer = builder.export(), export_estimator(est)
        test_tokens = [segmenter.tokens(e.text) for e in read_csv(EVAL_RAW).examples]
        ours = vectorizer.transform(test_tokens)
        theirs = builder.transform(test_tokens)
        assert np.allclose(ours.toarray(), theirs.toarray())
        expected = est.predict_proba(theirs)
        got = np.array([scorer.proba(*vectorizer.transform_one(t)) for t in test_tokens])
        assert np.allclose(got, expected, atol=1e-5)


def test_feature_spec_of_a_model_without_head_block_loads() -> None:
    old = {
        k: v
        for k, v in FeatureSpec().to_dict().items()
        if not k.endswith(("head_tokens", "head_weight", "head_features"))
    }
    spec = FeatureSpec.from_dict(old)
    assert spec.head_tokens == 0
    assert FeatureSpec.from_dict(FeatureSpec().to_dict()) == FeatureSpec()


def test_save_load_round_trip_gives_identical_predictions(
    trained: Classifier, model_dir: Path
) -> None:
    loaded = Classifier.load(model_dir)
    assert loaded.version == trained.version and loaded.version.startswith("clf-")
    assert loaded.predict_many(SAMPLES) == trained.predict_many(SAMPLES)


def test_manifest_records_classes_data_hashes_versions_and_seed(model_dir: Path) -> None:
    manifest = json.loads((model_dir / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["classes"] == ["劳动和社会保障", "城乡建设", "教育文体", "环境保护"]
    assert manifest["seed"] == CONFIG.seed
    names = {d["name"]: d for d in manifest["training"]["datasets"]}
    assert names["train_raw.csv"]["sha256"] == artifact.sha256_file(TRAIN_RAW)
    assert names["train_segmented.csv"]["form"] == "segmented"
    assert {"scikit-learn", "jieba", "numpy"} <= set(manifest["versions"])
    assert set(manifest["files"]) == {*artifact.REQUIRED_FILES, artifact.DICTIONARY_FILE}


def test_training_is_reproducible(trained: Classifier, tmp_path: Path) -> None:
    again = train([TRAIN_RAW, TRAIN_SEGMENTED], taxonomy=TAXONOMY, config=CONFIG)
    assert again.save(tmp_path / "again")["version"] == trained.version


def test_holdout_metrics_are_recorded(tmp_path: Path) -> None:
    clf = train([TRAIN_RAW, TRAIN_SEGMENTED], config=TrainConfig(holdout=0.25))
    holdout = clf.manifest["metrics"]["holdout"]
    assert holdout["n"] == 12 and 0.0 <= holdout["macro_f1"] <= 1.0


def test_train_extra_examples_add_to_the_data() -> None:
    extra = [
        ("嘎查草场被非法开垦，草原植被破坏", "农村农业"),
        ("苏木牧民反映草场被征占没有补偿", "农村农业"),
        ("草原上有人非法开矿破坏草场", "农村农业"),
        ("草原上有人非法开矿破坏草场", "农村农业"),  # a repeat counts once
    ]
    clf = train([TRAIN_RAW], extra, taxonomy=TAXONOMY, config=CONFIG)
    assert "农村农业" in clf.classes
    assert clf.manifest["training"]["extra_examples"]["n"] == 4
    assert clf.manifest["training"]["label_counts"]["农村农业"] == 3
    assert clf.predict("草场被破坏，牧民没有补偿").label == "农村农业"


def test_train_refuses_labels_outside_the_taxonomy() -> None:
    with pytest.raises(DataError, match="不是分类体系中的一级分类: 未知类"):
        train([TRAIN_RAW], [("随便写写", "未知类")], taxonomy=TAXONOMY, config=CONFIG)


def test_train_needs_two_classes() -> None:
    with pytest.raises(DataError, match="至少需要 2 个类别"):
        train([], [("小区暖气不热", "城乡建设")] * 3, config=CONFIG)


def test_tampered_model_file_is_refused(model_dir: Path, tmp_path: Path) -> None:
    copy = _copy(model_dir, tmp_path / "m")
    data = bytearray((copy / "model.npz").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / "model.npz").write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="SHA-256"):
        Classifier.load(copy)


def test_tampered_side_file_is_refused(model_dir: Path, tmp_path: Path) -> None:
    copy = _copy(model_dir, tmp_path / "m")
    with (copy / "stopwords.txt").open("a", encoding="utf-8") as f:
        f.write("小区\n")
    with pytest.raises(ArtifactError, match=r"stopwords\.txt"):
        Classifier.load(copy)


def test_pickled_payload_is_refused_even_with_matching_hash(
    model_dir: Path, tmp_path: Path
) -> None:
    copy = _copy(model_dir, tmp_path / "m")
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.array([print], dtype=object), allow_pickle=True)
    with zipfile.ZipFile(copy / "model.npz", "a") as zf:
        zf.writestr("evil.npy", buffer.getvalue())
    manifest = json.loads((copy / "manifest.json").read_text(encoding="utf-8"))
    manifest["files"]["model.npz"] = artifact.sha256_file(copy / "model.npz")
    (copy / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(ArtifactError, match="无法读取模型文件"):
        Classifier.load(copy)


def test_pinned_hash_mismatch_is_refused(model_dir: Path) -> None:
    with pytest.raises(ArtifactError, match="固定的值"):
        Classifier.load(model_dir, expected_sha256="0" * 64)
    manifest = artifact.read_manifest(model_dir)
    assert Classifier.load(model_dir, expected_sha256=manifest["files"]["model.npz"])


def test_missing_manifest_is_refused(model_dir: Path, tmp_path: Path) -> None:
    copy = _copy(model_dir, tmp_path / "m")
    (copy / "manifest.json").unlink()
    with pytest.raises(ArtifactError, match=r"缺少 manifest\.json"):
        Classifier.load(copy)


def test_predict_is_thread_safe_and_async(model_dir: Path) -> None:
    clf = Classifier.load(model_dir)
    texts = SAMPLES * 20
    expected = [clf.predict(t) for t in texts]
    with ThreadPoolExecutor(max_workers=4) as pool:
        assert list(pool.map(clf.predict, texts)) == expected

        async def run() -> list[Prediction]:
            return await asyncio.gather(*(clf.predict_async(t, pool) for t in texts))

        assert asyncio.run(run()) == expected


def test_shipped_model_loads_and_classifies() -> None:
    clf = Classifier.load(SHIPPED)
    assert len(clf.classes) == 7 and "城乡建设" in clf.classes
    assert clf.predict("呼和浩特市赛罕区小区冬季供暖不热，暖气片冰凉").label == "城乡建设"
    assert clf.predict("包头市某公司拖欠员工工资三个月不发").label == "劳动和社会保障"


# -- CLI --------------------------------------------------------------------------------------


def test_cli_train_then_eval_prints_one_json_object(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "m"
    argv = ["train", "--data", str(TRAIN_RAW), "--data", str(TRAIN_SEGMENTED)]
    assert cli.main([*argv, "--out", str(out), "--taxonomy", str(TAXONOMY)]) == 0
    assert (out / "manifest.json").is_file()
    capsys.readouterr()
    assert cli.main(["eval", "--model", str(out), "--data", str(EVAL_RAW)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    report = json.loads(lines[0])
    assert {"macro_f1", "accuracy", "n", "ms_per_doc", "per_class"} <= set(report)
    assert report["n"] == 12
    assert set(report["per_class"]["城乡建设"]) == {"precision", "recall", "f1", "support"}


@pytest.mark.parametrize(
    ("header", "rows", "extra", "message"),
    [
        (["title", "label"], [["小区", "城乡建设"]], [], "缺少文本列"),
        (["text", "label"], [["小区", "城乡建设"]], ["--label-column", "类别"], "没有标签列"),
        (["text", "label"], [], [], "没有可用的数据行"),
    ],
)
def test_cli_train_bad_csv_exits_nonzero_with_chinese_error(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    header: list[str],
    rows: list[list[str]],
    extra: list[str],
    message: str,
) -> None:
    path = _write_csv(tmp_path / "bad.csv", header, rows)
    code = cli.main(["train", "--data", str(path), "--out", str(tmp_path / "m"), *extra])
    err = capsys.readouterr().err
    assert code != 0
    assert any(line.startswith("错误: ") and message in line for line in err.splitlines())
    assert not (tmp_path / "m").exists()


def test_cli_missing_files_exit_nonzero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["train", "--data", str(tmp_path / "no.csv"), "--out", str(tmp_path)]) != 0
    assert "找不到数据文件" in capsys.readouterr().err
    assert cli.main(["eval", "--model", str(tmp_path / "none"), "--data", str(EVAL_RAW)]) != 0
    assert "找不到模型目录" in capsys.readouterr().err


def test_python_dash_m_classifier_runs_the_same_cli(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "classifier", "eval", "--model", str(tmp_path), "--data", "x.csv"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == cli.EXIT_ERROR
    assert "错误: 模型目录" in result.stderr


def test_add_subcommands_plugs_into_a_hotline_style_parser(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser(prog="hotline")
    sub = parser.add_subparsers(dest="command", required=True)
    cli.add_subcommands(sub, extra_examples=lambda args: [("小区暖气不热", "城乡建设")])
    args = parser.parse_args(["classifier", "train", "--from-db", "--out", str(tmp_path / "m")])
    assert args.from_db and callable(args.fn)
    args = parser.parse_args(["classifier", "eval", "--model", "m", "--data", "d.csv"])
    assert callable(args.fn)


# -- promotion --------------------------------------------------------------------------------


def test_compare_and_promote_refuses_a_worse_model(
    model_dir: Path, bad_model_dir: Path, tmp_path: Path
) -> None:
    current = _copy(model_dir, tmp_path / "current")
    before = artifact.read_manifest(current)["version"]
    result = compare_and_promote(bad_model_dir, current, EVAL_RAW)
    assert not result.promoted
    assert "拒绝替换" in result.message
    assert result.new_macro_f1 is not None and result.current_macro_f1 is not None
    assert result.new_macro_f1 < result.current_macro_f1
    assert artifact.read_manifest(current)["version"] == before


def test_compare_and_promote_swaps_in_a_better_model(
    model_dir: Path, bad_model_dir: Path, tmp_path: Path
) -> None:
    current = _copy(bad_model_dir, tmp_path / "current")
    old_version = artifact.read_manifest(current)["version"]
    result = compare_and_promote(model_dir, current, [EVAL_RAW])
    assert result.promoted, result.message
    assert (
        artifact.read_manifest(current)["version"] == artifact.read_manifest(model_dir)["version"]
    )
    assert result.backup is not None
    assert artifact.read_manifest(Path(result.backup))["version"] == old_version
    assert Classifier.load(current).predict(SAMPLES[0]).label == "城乡建设"
    assert not list(tmp_path.glob(".current.incoming.*"))


def test_compare_and_promote_installs_when_there_is_no_current_model(
    model_dir: Path, tmp_path: Path
) -> None:
    result = compare_and_promote(model_dir, tmp_path / "fresh", EVAL_RAW)
    assert result.promoted and (tmp_path / "fresh" / "model.npz").is_file()


def test_compare_and_promote_refuses_eval_data_the_new_model_trained_on(
    model_dir: Path, bad_model_dir: Path, tmp_path: Path
) -> None:
    current = _copy(bad_model_dir, tmp_path / "current")
    result = compare_and_promote(model_dir, current, TRAIN_RAW)
    assert not result.promoted and "训练数据" in result.message


def test_cli_promote_exit_code_says_refused(
    model_dir: Path, bad_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    current = _copy(model_dir, tmp_path / "current")
    argv = ["promote", "--new", str(bad_model_dir), "--current", str(current)]
    assert cli.main([*argv, "--data", str(EVAL_RAW)]) == cli.EXIT_REFUSED
    captured = capsys.readouterr()
    assert json.loads(captured.out)["promoted"] is False
    assert "拒绝替换" in captured.err


def test_taxonomy_from_csv_and_json_round_trip(tmp_path: Path) -> None:
    tax = Taxonomy.from_csv(TAXONOMY)
    assert "农村农业" in tax.level1
    assert tax.tree["城乡建设"]["城市建设和市政管理"][0] == "冬季采暖"
    tax.dump_json(tmp_path / "t.json")
    assert Taxonomy.load_json(tmp_path / "t.json").tree == tax.tree


# -- raw-text evaluation (bench/_rawtext.py) ---------------------------------------------------


def _rawtext_module() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("_rawtext", REPO / "bench" / "_rawtext.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["_rawtext"] = module
    spec.loader.exec_module(module)
    return module


def _doc(topic: str, n: int, variant: int = 0) -> list[str]:
    """A made-up token list: n topic words plus one word that tells copies apart."""
    return [f"{topic}{i}" for i in range(n)] + [f"v{variant}"]


def test_near_duplicates_finds_copies_and_not_itself() -> None:
    rawtext = _rawtext_module()
    targets = [_doc("a", 8), _doc("a", 8, 1), _doc("b", 8)]
    assert rawtext.near_duplicates([_doc("a", 8, 2), _doc("c", 8)], targets) == [[0, 1], []]
    assert rawtext.near_duplicates(targets, targets, same_set=True) == [[1], [0], []]


def test_raw_text_folds_never_train_on_a_held_out_message_or_its_copies() -> None:
    rawtext = _rawtext_module()
    labels = ["甲", "乙"]
    # segmented rows: topics t0..t19, row 2k+1 a near-duplicate of row 2k
    seg_tokens = [_doc(f"t{k // 2}", 8, k % 2) for k in range(40)]
    seg_labels = [labels[(k // 2) % 2] for k in range(40)]
    # raw sample: copies of topics 0..9; unlabeled pool: copies of topics 10..14, one of
    # topic 0 (the same letter as a raw-sample message) and one with no copy at all
    raw_tokens = [_doc(f"t{k}", 8, 7) for k in range(10)]
    raw_labels = [labels[k % 2] for k in range(10)]
    pool_tokens = [_doc(f"t{k}", 8, 8) for k in range(10, 15)] + [_doc("t0", 8, 9), _doc("x", 8)]
    ev = rawtext.build(
        seg_tokens,
        seg_labels,
        [f"raw {k}" for k in range(10)],
        raw_tokens,
        raw_labels,
        [f"pool {k}" for k in range(len(pool_tokens))],
        ["messages_with_votes.csv"] * len(pool_tokens),
        pool_tokens,
        folds=5,
        seed=1,
    )
    pool_messages = [m for m in ev.messages if m.pool_index is not None]
    assert len(ev.messages) == 15 and len(pool_messages) == 5
    assert {m.pool_index for m in pool_messages} == {0, 1, 2, 3, 4}
    assert all(m.label == labels[(10 + m.pool_index) % 2] for m in pool_messages)
    assert ev.messages[0].copies == {0, 1}
    assert sorted(t for f in ev.folds for t in f.test) == list(range(15))
    for fold in ev.folds:
        for t in fold.test:
            m = ev.messages[t]
            assert not m.copies & set(fold.seg_keep)
            if m.raw_index is not None:
                assert m.raw_index not in fold.raw_keep
                if m.raw_index == 0:  # the pool's copy of raw message 0 goes with it
                    assert 5 not in fold.pool_keep
            if m.pool_index is not None:
                assert m.pool_index not in fold.pool_keep
        assert 6 in fold.pool_keep  # a message with no copy stays learnable


def test_shipped_model_rebuilds_its_trimmed_dictionary_from_the_installed_jieba(
    tmp_path: Path,
) -> None:
    """The repository ships the words, not jieba's data: a model directory without its
    jieba_dict.txt gets it rebuilt on load, byte for byte the file the model was trained with
    (the manifest's hash is checked after the rebuild)."""
    model = tmp_path / "model"
    shutil.copytree(DEFAULT_MODEL_DIR, model)
    (model / "jieba_dict.txt").unlink(missing_ok=True)
    clf = Classifier.load(model)
    assert (model / "jieba_dict.txt").is_file()
    assert clf.predict("小区暖气不热，请尽快处理").label
    # a dictionary that is not the trained one is refused, not silently used
    (model / "jieba_dict.txt").write_text("# total: 1\n暖气 1\n", encoding="utf-8")
    with pytest.raises(ArtifactError):
        Classifier.load(model)
