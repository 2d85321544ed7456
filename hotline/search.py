"""Wire search: the analyser (the classifier's jieba segmenter + the gazetteer's place names)
and the backend the config picks."""

from __future__ import annotations

from classifier.text import Segmenter
from hotline.config import Settings
from kb.analysis import Analyzer, PlaceNames
from kb.search import Search, SearchBackend
from routing.gazetteer import Gazetteer


class SearchWords:
    """kb's WordSegmenter: the classifier's jieba pipeline in search mode."""

    def __init__(self, segmenter: Segmenter | None = None) -> None:
        self.segmenter = segmenter or Segmenter()

    def tokens(self, text: str) -> list[str]:
        return self.segmenter.search_tokens(text)


def build_analyzer(gazetteer: Gazetteer | None) -> Analyzer:
    places = PlaceNames(gazetteer.canonical, gazetteer.place_names()) if gazetteer else None
    return Analyzer(SearchWords(), places)


def build_backend(settings: Settings, *, prefix: str | None = None) -> SearchBackend:
    s = settings.search
    if s.backend == "elasticsearch":
        from kb.search_es import ElasticSearch  # only this backend needs the client

        return ElasticSearch(
            s.url,
            prefix=prefix or s.index_prefix,
            shards=s.shards,
            replicas=s.replicas,
            timeout_s=s.timeout_s,
            refresh=s.refresh_writes,
            api_key=s.api_key or None,
        )
    from kb.fts_store import SqliteSearch

    return SqliteSearch(settings.resolve(s.path))


def build_search(settings: Settings, gazetteer: Gazetteer | None) -> Search:
    return Search(build_backend(settings), build_analyzer(gazetteer))
