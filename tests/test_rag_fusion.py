"""Fusion, reranking and embedding prefixes on real parts (SQLite, Chroma, the bundled MiniLM,
a tiny random CrossEncoder saved here)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from test_rag_support import open_services

from engine.embeddings import TextEmbedder, bundled_embedder_path, default_prefixes
from engine.rag import SearchOptions
from engine.rag.fusion import FusionWeights, dense_weight, score_fusion

EVAL = Path(__file__).resolve().parent.parent / "bench" / "data" / "eval"
# small fixed sets: a few real documents of two evaluation sets and every question about them
FIXED = {
    "zh_mixed": [
        "zh_CN-apropos.1.md",
        "zh_CN-whatis.1.txt",
        "zh_CN-manpath.5.txt",
        "zh_CN-mandb.8.md",
        "zh_CN-passwd.1.md",
        "zh_CN-shadow.5.txt",
        "zh_TW-passwd.5.md",
        "zh_CN-chpasswd.8.txt",
    ],
    "en_man": [
        "sort.txt",
        "uniq.md",
        "cut.txt",
        "tr.md",
        "gzip.md",
        "watch.md",
        "date.txt",
        "chmod.md",
        "ln.txt",
        "df.txt",
    ],
}


@pytest.fixture(scope="module")
def docs_services(tmp_path_factory):
    yield from open_services(tmp_path_factory)


def _squash(text: str) -> str:
    return "".join(text.split())


@pytest.mark.parametrize("name", sorted(FIXED))
def test_hybrid_is_never_below_the_better_of_dense_and_keywords(docs_services, name):
    s = docs_services
    docs = FIXED[name]
    results = s.documents.ingest_paths([EVAL / name / "docs" / d for d in docs], collection=f"fixed-{name}")
    assert all(r.status == "added" for r in results)
    questions = [
        q for q in json.loads((EVAL / name / "questions.json").read_text())["questions"] if q["doc"] in docs
    ]
    assert len(questions) >= 12
    scores = {}
    for mode in ("dense", "bm25", "hybrid"):
        recall = mrr = 0.0
        for q in questions:
            hits = s.documents.search(q["q"], k=5, collections=[f"fixed-{name}"], mode=mode)
            ranks = [
                r
                for r, h in enumerate(hits, 1)
                if h.source == q["doc"] and _squash(q["answer"]) in _squash(h.text)
            ]
            recall += bool(ranks)
            mrr += 1 / ranks[0] if ranks else 0.0
        scores[mode] = (recall / len(questions), mrr / len(questions))
    assert scores["hybrid"][0] >= max(scores["dense"][0], scores["bm25"][0]), scores
    assert scores["hybrid"][1] >= max(scores["dense"][1], scores["bm25"][1]) - 1e-9, scores


def test_score_fusion_divides_each_list_by_its_best_and_weights_them():
    dense = {"a": 0.8, "b": 0.4, "c": 0.2}
    keyword = {"c": 12.0, "d": 6.0}
    assert [i for i, _ in score_fusion(dense, keyword, dense_share=1.0, candidates=2)][:3] == ["a", "b", "c"]
    assert [i for i, _ in score_fusion(dense, keyword, dense_share=0.0, candidates=5)][:2] == ["c", "d"]
    fused = dict(score_fusion(dense, keyword, dense_share=0.5, candidates=2))
    # "a" is missing from the keyword list, which was cut at 2: it ranked below its last (0.5)
    assert math.isclose(fused["a"], 0.5 * 1.0 + 0.5 * 0.5)
    assert math.isclose(fused["c"], 0.5 * 0.25 + 0.5 * 1.0)
    assert math.isclose(fused["d"], 0.5 * 0.25 + 0.5 * 0.5)
    # a keyword list shorter than asked for is complete: what it lacks has no keyword match
    assert math.isclose(dict(score_fusion(dense, keyword, dense_share=0.5, candidates=5))["a"], 0.5)


def test_questions_in_cjk_or_with_identifiers_lean_on_keywords():
    w = FusionWeights()
    plain = dense_weight("how do I keep the original file when compressing", w)
    assert dense_weight("近端策略优化是什么意思", w) < plain
    assert dense_weight("近端策略优化是什么意思", w, multilingual=True) == plain  # a model that reads Chinese
    leaning = FusionWeights(identifier=0.2)
    assert dense_weight("what does --no-subpages do", leaning) < dense_weight("what does it do", leaning)
    assert dense_weight("where is /etc/skel copied", leaning) < plain


def save_tiny_cross_encoder(folder: Path) -> Path:
    """A 1-layer BERT cross-encoder with random weights and MiniLM's tokenizer: no download."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(str(bundled_embedder_path()))
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        num_labels=1,
    )
    BertForSequenceClassification(config).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


def test_a_cross_encoder_reorders_the_fused_top_passages(docs_services, tmp_path):
    from sentence_transformers import CrossEncoder

    from engine import Settings, build
    from engine.rerank import CrossEncoderReranker

    s = docs_services
    model_dir = save_tiny_cross_encoder(tmp_path / "tiny-ce")
    topics = [
        "brass hinges",
        "copper rivets",
        "oak planks",
        "steel bolts",
        "wool blankets",
        "glass jars",
        "clay pots",
        "linen sheets",
    ]
    for i, topic in enumerate(topics):
        (tmp_path / f"shelf{i}.txt").write_text(
            f"Shelf {i} of the workshop store holds {topic}.", encoding="utf-8"
        )
    s.documents.ingest_paths([tmp_path / f"shelf{i}.txt" for i in range(len(topics))], collection="shelves")
    ask = dict(k=5, collections=["shelves"], options=SearchOptions(rerank_candidates=8))
    plain = s.documents.search("which shelf holds the workshop store items", **ask)
    searcher = s.documents.searcher
    searcher.reranker = CrossEncoderReranker(str(model_dir))
    try:
        reranked = s.documents.search("which shelf holds the workshop store items", **ask)
        unranked = s.documents.search(
            "which shelf holds the workshop store items",
            **{**ask, "options": SearchOptions(rerank_candidates=8, rerank=False)},
        )
    finally:
        searcher.reranker = None
    candidates = s.documents.search(
        "which shelf holds the workshop store items", k=8, collections=["shelves"]
    )
    independent = CrossEncoder(str(model_dir), device="cpu").predict(
        [("which shelf holds the workshop store items", h.text) for h in candidates]
    )
    expected = [h.id for _, h in sorted(zip(independent.tolist(), candidates), key=lambda t: -t[0])][:5]
    assert [h.id for h in reranked] == expected
    assert [h.id for h in reranked] != [h.id for h in plain]  # the stage changed the order
    assert [h.id for h in unranked] == [h.id for h in plain]
    assert all("rerank_score" in h.meta and "fused_score" in h.meta for h in reranked)
    services = build(Settings(data_dir=tmp_path / "data", rerank_model=str(model_dir)), load_model=False)
    try:
        assert isinstance(services.documents.searcher.reranker, CrossEncoderReranker)
    finally:
        services.close()


def test_query_and_passage_prefixes_reach_the_model():
    import numpy as np

    plain = TextEmbedder()
    prefixed = TextEmbedder(query_prefix="query: ", passage_prefix="passage: ")
    assert prefixed.name != plain.name  # other vectors: another index
    assert np.allclose(prefixed.embed_queries(["kiln heat"]), plain.embed(["query: kiln heat"]), atol=1e-5)
    assert np.allclose(prefixed.embed(["kiln heat"]), plain.embed(["passage: kiln heat"]), atol=1e-5)
    assert np.allclose(plain.embed_queries(["kiln heat"]), plain.embed(["kiln heat"]), atol=1e-5)
    assert default_prefixes("intfloat/multilingual-e5-small") == ("query: ", "passage: ")
    assert default_prefixes("BAAI/bge-small-en-v1.5")[0].startswith("Represent this sentence")
    assert default_prefixes("BAAI/bge-m3") == ("", "")
    assert TextEmbedder("intfloat/multilingual-e5-small").multilingual and not plain.multilingual
