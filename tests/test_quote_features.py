"""The features quotes are chosen by (bot/quote_features.py), on real retrievals."""

from __future__ import annotations

import pytest

from bot.answer import MAX_QUOTE_SENTENCES, compose_answer, quote_candidates
from bot.quote_features import FEATURES, candidate_features
from index.articles import Article
from index.chunking import sentence_spans
from index.search import Retriever
from index.store import Store
from tests.test_answer import TOPICS

# Long enough for two passages: the answers to detail questions are in the second.
FERRY = (
    "Un ferry reliant Brest à l'île d'Ouessant a heurté un rocher samedi matin par une mer "
    "agitée, au large de la pointe Saint-Mathieu. Le navire, qui transportait plus de deux "
    "cents passagers, a pu regagner le port de Brest par ses propres moyens en début "
    "d'après-midi, escorté par une vedette de la SNSM.\n\n"
    "Selon la compagnie, le ferry a touché le fond en contournant une zone de hauts-fonds "
    "bien connue des marins de la région. Une brèche a été constatée dans la coque, au-dessus "
    "de la ligne de flottaison, et les pompes de bord ont suffi à contenir l'eau. Les "
    "passagers ont été rassemblés sur le pont supérieur, munis de gilets de sauvetage, "
    "pendant toute la traversée de retour. La préfecture maritime a dépêché un hélicoptère "
    "sur place par précaution, sans avoir à hélitreuiller personne.\n\n"
    "Les rotations vers Ouessant sont suspendues jusqu'à nouvel ordre, le temps d'expertiser "
    "la coque. La compagnie a affrété un navire de remplacement pour assurer le "
    "ravitaillement de l'île, dont les habitants dépendent de la liaison quotidienne. Un "
    "élu de l'île a regretté que la desserte repose sur un seul bateau en hiver. Les "
    "commerçants redoutent des ruptures d'approvisionnement si l'arrêt se prolonge.\n\n"
    "Le capitaine du navire a été entendu par les gendarmes maritimes dans la soirée. "
    "Trois passagers, légèrement blessés lors du choc, ont été examinés à l'hôpital de Brest. "
    "Une enquête administrative a été ouverte par le bureau d'enquêtes sur les événements "
    "de mer, qui doit rendre ses conclusions dans plusieurs mois. Le dernier accident de ce "
    "type sur la ligne remontait à 1998."
)


@pytest.fixture(scope="module")
def ferry(tmp_path_factory: pytest.TempPathFactory, embedder) -> Store:  # type: ignore[no-untyped-def]
    store = Store(tmp_path_factory.mktemp("ferry"), embedder.model_id, embedder.dim)
    articles = [
        Article(title=f"Story {n}", text=text, source="Test", date="2024-02-03", lang="en")
        for n, text in enumerate(TOPICS)
    ]
    articles.append(
        Article(
            title="Un ferry heurte un rocher",
            text=FERRY,
            source="ATS",
            date="2024-02-03",
            lang="fr",
        )
    )
    store.add_articles(articles, embedder)
    return store


def test_rank_is_the_articles_place_not_the_passages(ferry: Store, embedder) -> None:  # type: ignore[no-untyped-def]
    # Both passages of the ferry story are retrieved first: a sentence of the second one is
    # no less likely to answer (detail questions are answered deep in an article).
    question = "Who questioned the ferry's captain?"
    retrieval = Retriever(ferry, embedder).retrieve_many([question], k=5)[0]
    first, second = retrieval.hits[:2]
    assert first.passage.article.id == second.passage.article.id
    candidates = quote_candidates(retrieval.hits)
    vectors = ferry.embed_texts([c.text for c in candidates], embedder)
    x, _ = candidate_features(question, candidates, vectors @ retrieval.vector, retrieval.hits)
    rank = x[:, FEATURES.index("rank")]
    ferry_rows = [
        i for i, c in enumerate(candidates) if c.hit.passage.article.title[:8] == "Un ferry"
    ]
    assert {float(rank[i]) for i in ferry_rows} == {0.0}
    assert all(rank[i] >= 1 for i in range(len(candidates)) if i not in ferry_rows)


def test_cross_language_cosines_have_their_own_feature(ferry: Store, embedder) -> None:  # type: ignore[no-untyped-def]
    # An English question: the French story's sentences carry their cosine in "cross" too
    # (cosines across languages run lower and closer together), the English ones do not.
    question = "How many passengers were injured when the ferry hit a rock off Brest?"
    retrieval = Retriever(ferry, embedder).retrieve_many([question], k=5)[0]
    candidates = quote_candidates(retrieval.hits)
    vectors = ferry.embed_texts([c.text for c in candidates], embedder)
    x, _ = candidate_features(question, candidates, vectors @ retrieval.vector, retrieval.hits)
    cosine, cross = x[:, FEATURES.index("cosine")], x[:, FEATURES.index("cross")]
    langs = [c.hit.passage.article.lang for c in candidates]
    assert {"fr", "en"} <= set(langs)
    for lang, cos, crossed in zip(langs, cosine, cross, strict=True):
        assert crossed == (cos if lang == "fr" else 0.0)
    assert (cross < 0).any()


def test_a_quote_takes_in_a_neighbour_that_answers_as_well(ferry: Store, embedder) -> None:  # type: ignore[no-untyped-def]
    # Two adjacent sentences answer the question together: the quote model scores the
    # second nearly as high as the first, so the citation quotes both (never more than two).
    question = "Who heard the captain, and where were the injured examined?"
    retrieval = Retriever(ferry, embedder).retrieve_many([question], k=3)[0]
    answer = compose_answer(retrieval, ferry, embedder, floor=0.0)
    quote = answer.citations[0].quote
    assert "entendu par les gendarmes maritimes" in quote
    assert "examinés à l'hôpital de Brest" in quote
    assert quote in FERRY
    assert len(sentence_spans(quote)) == MAX_QUOTE_SENTENCES
