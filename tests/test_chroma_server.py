"""Vectors on a real Chroma server (``chroma run``): SQLite stays the source of truth, so
``reindex`` rebuilds a lost server's collections; an unauthenticated server beyond loopback
is refused; the token goes out as a bearer header."""

from __future__ import annotations

import pytest
from remote_servers import send_json, start_chroma_server, tiny_server

import cli
from engine import Settings, build
from engine.errors import ConfigError, RetrievalError
from engine.memory.provenance import USER
from engine.vectors import VectorStore, check_chroma_server

MANUAL = (
    "# Heron 7 manual\n\nError E-47 means the drain filter is blocked. Rinse the filter under warm water.\n"
)


@pytest.mark.parametrize(
    ("url", "token", "refused"),
    [
        ("http://10.0.0.5:8000", None, True),
        ("http://chroma.internal:8000", None, True),
        ("http://10.0.0.5:8000", "s3cret", False),
        ("https://chroma.example.com", None, False),
        ("http://127.0.0.1:8000", None, False),
        ("http://localhost:8000", None, False),
        ("http://[::1]:8000", None, False),
    ],
)
def test_plain_http_beyond_loopback_needs_a_token(tmp_path, url, token, refused):
    if refused:
        with pytest.raises(ConfigError, match="Refusing the Chroma server"):
            check_chroma_server(url, token)
        with pytest.raises(ConfigError, match="chroma-token"):
            build(Settings(data_dir=tmp_path / "data", chroma_url=url, chroma_token=token), load_model=False)
    else:
        check_chroma_server(url, token)


def test_the_token_is_sent_as_a_bearer_header(tmp_path):
    routes = {("GET", "/api/v2/heartbeat"): lambda h: send_json(h, {"nanosecond heartbeat": 1})}
    with tiny_server(routes) as (url, seen):
        store = VectorStore(tmp_path / "chroma", url=url, token="s3cret-token")
        with pytest.raises(RetrievalError):  # the fake is no Chroma: what matters is what it was sent
            store.collection("hearth-test").count()
        store.close()
    assert seen and all(headers.get("Authorization") == "Bearer s3cret-token" for _, _, headers, _ in seen)
    assert "s3cret-token" not in repr(
        Settings(data_dir=tmp_path, chroma_url=url, chroma_token="s3cret-token")
    )


def test_a_server_that_is_down_is_a_clear_retrieval_error(tmp_path):
    with tiny_server({}) as (url, _):
        pass  # nothing listens there any more
    store = VectorStore(tmp_path / "chroma", url=url)
    with pytest.raises(RetrievalError, match="Chroma server"):
        store.collection("hearth-test")


def test_reindex_rebuilds_a_lost_server_from_sqlite(tmp_path, capsys):
    data = tmp_path / "data"
    first = start_chroma_server(tmp_path / "a")
    try:
        services = build(Settings(data_dir=data, chroma_url=first.url), load_model=False)
        manual = tmp_path / "heron7.md"
        manual.write_text(MANUAL, encoding="utf-8")
        assert services.documents.ingest_paths([manual])[0].status == "added"
        services.memory.archival.insert("The user's cat is called Pickles.", origin=USER)
        assert services.documents.search("drain filter blocked", k=1, mode="dense")[0].source == "heron7.md"
        services.close()
    finally:
        first.stop()
    assert not (data / "chroma").exists(), "nothing was written to the embedded store"

    second = start_chroma_server(tmp_path / "b")  # a new, empty server: every vector is gone
    try:
        services = build(Settings(data_dir=data, chroma_url=second.url), load_model=False)
        assert services.documents.search("drain filter blocked", k=1, mode="dense") == []
        services.close()
        assert cli.main(["--data-dir", str(data), "--chroma-url", second.url, "reindex"]) == 0
        assert "Embedded 1 chunk(s)" in capsys.readouterr().out
        services = build(Settings(data_dir=data, chroma_url=second.url), load_model=False)
        try:
            assert (
                services.documents.search("drain filter blocked", k=1, mode="dense")[0].source == "heron7.md"
            )
            found = services.memory.archival.search("what pet do I have?", k=1)
            assert found and "Pickles" in found[0].text, "archival memory re-indexes itself from SQLite"
            assert services.vectors.collection(services.memory.archival._collection_name()).count() == 1
        finally:
            services.close()
    finally:
        second.stop()
