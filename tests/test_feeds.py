"""Feeds and pages -> Articles, through a real HTTP server on 127.0.0.1 serving the bench
feeds (../shared/bench/feeds), generated article pages and misbehaving endpoints."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from index.feeds import (
    FeedError,
    FeedPoll,
    FeedSource,
    FeedState,
    collect_feed,
    extract_article,
    item_to_article,
    parse_feed,
    parse_feed_settings,
)
from index.fetch import FetchError, fetch, make_client
from tests.feed_server import HUGE_BYTES, FeedServer, serve

GUARDIAN = "rss-parser-js/guardian.rss"
DATE = "Tue, 05 Mar 2024 08:00:00 GMT"
HARBOUR_TEXT = [
    "The harbour of Portville reopened on Tuesday after a storm closed it for three days, "
    "the port authority said in a statement.",
    "Fishing boats returned to their moorings in the morning, and the first ferry left at "
    "noon with about two hundred passengers on board.",
    "Engineers inspected the breakwater and found only minor damage, which will be repaired "
    "over the coming weeks without closing the port again.",
    '"We were lucky this time," the harbour master told reporters, adding that the new sea '
    "wall had done its job.",
]


@pytest.fixture(scope="module")
def server() -> Iterator[FeedServer]:
    with serve() as running:
        yield running


@pytest.fixture
def news_feed(server: FeedServer) -> str:
    """A feed of four items: two summary-only whose pages are served (one without a date
    in the feed), one whose page is gone, and one carrying its full text."""
    server.add("/articles/harbour", article_page("Harbour reopens after storm", HARBOUR_TEXT))
    server.add(
        "/articles/dated",
        article_page("Bridge closed for repairs", HARBOUR_TEXT[2:], date="2024-03-07"),
    )
    full_text = " ".join(["The council approved the budget after a long debate."] * 20)
    items = [
        rss_item("Harbour reopens", server.url("/articles/harbour"), "The harbour reopened."),
        rss_item("Gone story", server.url("/articles/gone"), "<p>Only this summary.</p>"),
        rss_item(
            "Budget approved",
            server.url("/articles/in-feed"),
            "Council approves budget.",
            content=f"<p>{full_text}</p><p>{full_text}</p>",
        ),
        rss_item("Bridge closed", server.url("/articles/dated"), "The bridge is shut.", date=""),
    ]
    return server.add("/news.rss", rss(items), "application/rss+xml")


def article_page(title: str, paragraphs: list[str], date: str = "2024-03-05") -> str:
    body = "\n".join(f"<p>{p}</p>" for p in paragraphs)
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>{title} | Portville Post</title><meta property="og:title" content="{title}">
<meta property="og:site_name" content="Portville Post">
<meta property="article:published_time" content="{date}T09:00:00+01:00"></head>
<body><nav><a href="/">Home</a> <a href="/world">World</a></nav>
<article><h1>{title}</h1>{body}</article>
<footer>Copyright 2024 Portville Post. All rights reserved.</footer></body></html>"""


def rss_item(title: str, link: str, summary: str, content: str = "", date: str = DATE) -> str:
    encoded = f"<content:encoded><![CDATA[{content}]]></content:encoded>" if content else ""
    published = f"<pubDate>{date}</pubDate>" if date else ""
    return (
        f"<item><title>{title}</title><link>{link}</link><guid>{link}</guid>{published}"
        f"<description><![CDATA[{summary}]]></description>{encoded}</item>"
    )


def rss(items: list[str]) -> str:
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0" '
        'xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel>'
        "<title>Portville Post</title><link>http://portville.example/</link>"
        f"<description>Local news</description>{''.join(items)}</channel></rss>"
    )


def bench_source(server: FeedServer, relative: str, **kwargs: Any) -> FeedSource:
    return FeedSource(server.url("/feeds/" + relative), **kwargs)


def poll(source: FeedSource, state: FeedState | None = None, **kwargs: Any) -> FeedPoll:
    """One poll of a feed on the local server (127.0.0.1 is allowed)."""
    return collect_feed(source, state, allow_private=True, **kwargs)


# --- feeds over HTTP -------------------------------------------------------------------


def test_guardian_feed_gives_its_items_with_dates_titles_links_and_source(server: FeedServer):
    result = poll(bench_source(server, GUARDIAN), fetch_pages=False)
    assert result.ok and not result.errors
    assert len(result.articles) == 55
    assert len({a.id for a in result.articles}) == 55
    first = result.articles[0]
    assert first.title == "Trump State of the Union address promised unity but emphasized discord"
    assert first.url == (
        "https://www.theguardian.com/us-news/2018/jan/31/"
        "donald-trump-state-of-the-union-address-unity-discord"
    )
    assert first.date == "2018-01-31"
    assert first.text.startswith("The president’s ‘new American moment’ speech")
    assert "Continue reading" not in first.text and "\n\n" in first.text
    for article in result.articles:
        assert re.fullmatch(r"201[78]-\d\d-\d\d", article.date or "")
        assert article.url and article.url.startswith("https://www.theguardian.com/")
        assert article.title and article.source == "The Guardian" and article.lang == "en"
        assert article.summary_only  # pages were not fetched
    assert result.state.etag and result.state.last_modified
    assert server.user_agents[-1].startswith("newsbot/0.1 (+https://")


def test_configured_source_name_and_language_win_over_the_feed(server: FeedServer):
    source = bench_source(server, "rss-parser-js/heise.atom", source="heise", lang="EN-gb")
    result = poll(source, fetch_pages=False)
    assert {a.source for a in result.articles} == {"heise"}
    assert {a.lang for a in result.articles} == {"en"}  # as configured, not guessed


def test_second_poll_of_an_unchanged_feed_is_not_modified(server: FeedServer):
    source = bench_source(server, GUARDIAN)
    first = poll(source, fetch_pages=False)
    again = poll(source, first.state, fetch_pages=False)
    assert again.ok and again.not_modified and again.articles == []
    assert again.state == first.state
    by_date = poll(source, FeedState(last_modified=first.state.last_modified), fetch_pages=False)
    assert by_date.not_modified
    direct = fetch(source.url, etag=first.state.etag, allow_private=True)
    assert direct.status == 304 and direct.not_modified and direct.content == b""


def test_atom_feeds_parse_with_dates_and_full_content(server: FeedServer):
    heise = poll(bench_source(server, "rss-parser-js/heise.atom"), fetch_pages=False)
    assert heise.title == "heise developer neueste Meldungen"
    assert len(heise.articles) == 15
    assert heise.articles[0].title == "Java-Anwendungsserver: Red Hat gibt WildFly 10 frei"
    assert heise.articles[0].date == "2016-02-01"
    assert {a.lang for a in heise.articles} == {"de"}  # guessed: the feed does not say
    blog = poll(bench_source(server, "rss-parser-js/feedburner.atom"), fetch_pages=False)
    assert len(blog.articles) == 25
    full = [a for a in blog.articles if not a.summary_only]
    assert len(full) == 19  # <content> long enough to be the article itself
    assert full[0].url == (
        "http://googleadsdeveloper.blogspot.com/2016/06/adwords-and-dfp-java-client-library.html"
    )  # feedburner:origLink, not the feedproxy redirect


def test_rdf_feeds_parse(server: FeedServer):
    science = poll(bench_source(server, "rss-parser-js/rss-1.rss"), fetch_pages=False)
    assert len(science.articles) == 69
    assert science.articles[0].title == "Food for fungi"
    assert science.articles[0].date == "2017-06-15"
    orf = poll(bench_source(server, "prof18-RSS-Parser/rdf-feed-test.xml"), fetch_pages=False)
    (article,) = orf.articles
    assert article.title == "Kiew erneut Ziel russischer Drohnenangriffe"
    assert article.date == "2025-01-03"  # dc:date
    assert article.source == "news.ORF.at"


@pytest.mark.parametrize(
    ("relative", "feed_title", "words"),
    [
        (
            "prof18-RSS-Parser/feed-test-greek.xml",  # ISO-8859-7, served as "UTF-8"
            "Liberal - ΕΠΙΚΑΙΡΟΤΗΤΑ",
            ["«Πορτραίτα καραντίνας»", "συλλογή Φέλιου", "αναγκαστικού εγκλεισμού"],
        ),
        (
            "prof18-RSS-Parser/feed-test-ru.xml",
            "Аргументы и Факты",
            ["собака в Таиланде", "похороненного младенца", "Пинг-Понг"],
        ),
        (
            "rss-parser-js/encoding.rss",  # ISO-8859-1
            "Jornal de Notícias - Últimas Notícias",
            ["Mãe de utente é a nova presidente da Raríssimas", "Sónia Laygue", "criança"],
        ),
        (
            "rss-parser-js/uolNoticias.rss",  # declares UTF-8, is windows-1252
            "UOL Noticias",
            ["simulações de 2º turno", "Líder na pesquisa", "intenção de voto"],
        ),
    ],
)
def test_odd_encodings_come_out_as_unicode(
    server: FeedServer, relative: str, feed_title: str, words: list[str]
):
    result = poll(bench_source(server, relative), fetch_pages=False)
    assert result.title == feed_title
    everything = " ".join(a.title + " " + a.text for a in result.articles)
    for word in words:
        assert word in everything
    assert "\ufffd" not in everything and "Ã" not in everything
    assert all(a.date for a in result.articles)  # "Seg, 24 Set 2018" included


def test_malformed_feed_that_still_has_items_is_used_with_a_warning(server: FeedServer):
    # blank lines before the XML declaration: feedparser flags it (bozo) but reads the item
    result = poll(bench_source(server, "prof18-RSS-Parser/feed-test-malformed.xml"))
    assert result.ok
    assert result.warning and "XML or text declaration not at start" in result.warning
    (article,) = result.articles
    assert article.title == "Japan’s plans for 5G include 10 billion 14-digit phone numbers"
    assert not article.summary_only  # content:encoded is the article; no page fetched
    assert article.date == "2019-05-15" and article.source == "Android Authority"


def test_an_html_page_is_reported_as_not_a_feed(server: FeedServer):
    url = server.add("/not-a-feed", article_page("A page", HARBOUR_TEXT))
    result = collect_feed(FeedSource(url), FeedState(etag='"x"'), allow_private=True)
    assert result.error == "not a feed: an HTML page, not RSS or Atom"
    assert result.articles == [] and result.state == FeedState(etag='"x"')


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "not a feed: the response is empty"),
        (b"  \n", "not a feed: the response is empty"),
        (b'{"items": []}', "not a feed: malformed XML (not well-formed (invalid token)"),
        (b"<urlset><url><loc>http://a/</loc></url></urlset>", "not a feed: XML without RSS"),
    ],
)
def test_content_without_a_feed_raises_feed_error(content: bytes, message: str):
    with pytest.raises(FeedError, match=re.escape(message)):
        parse_feed(content, FeedSource("http://example.com/feed"))


def test_truncated_feed_keeps_the_items_before_the_break():
    content = rss([rss_item("Whole", "http://example.com/a", "Complete item.")]).encode()
    parsed = parse_feed(content[:-30], FeedSource("http://example.com/feed"))
    assert [item.title for item in parsed.items] == ["Whole"]
    assert parsed.warning  # "unclosed token at line 1"


def test_an_empty_but_valid_feed_has_no_items():
    parsed = parse_feed(rss([]).encode(), FeedSource("http://example.com/feed"))
    assert parsed.items == [] and parsed.title == "Portville Post" and parsed.warning is None


def test_char_refs_to_no_character_cost_neither_the_item_nor_the_feed(server: FeedServer):
    """`&#xD800;` (a lone surrogate) and `&#x110000;` made feedparser raise, which lost the
    feed and the whole poll; now they read as U+FFFD. An item with no readable text is
    reported by its link instead of indexed."""
    hostile = (
        "<item><title>Storm &#xD800; hits &#55296; the coast</title>"
        f"<link>{server.url('/storm')}?id=&#xDFFF;</link><pubDate>{DATE}</pubDate>"
        "<description>The storm &#xD800;hit the coast on Tuesday &#x110000; and "
        "&#99999999999; closed the harbour for three days.</description></item>"
    )
    junk = f"<item><title>$</title><link>{server.url('/junk')}</link></item>"
    good = rss_item("Harbour reopens", server.url("/harbour"), "The harbour reopened today.")
    url = server.add("/hostile.rss", rss([hostile, junk, good]), "application/rss+xml")
    result = poll(FeedSource(url), fetch_pages=False)
    assert result.ok and result.warning is None
    storm, harbour = result.articles
    assert storm.title == "Storm \ufffd hits \ufffd the coast"
    assert storm.text == (
        "The storm \ufffdhit the coast on Tuesday \ufffd and \ufffd closed the harbour for "
        "three days."
    )
    assert storm.url == server.url("/storm") + "?id=%EF%BF%BD" and storm.date == "2024-03-05"
    assert storm.content_hash and harbour.title == "Harbour reopens"
    assert result.errors == [
        f"{server.url('/junk')}: the text has no readable words (fewer than 10 letters)"
    ]


# --- summaries and pages ---------------------------------------------------------------


def test_summary_only_item_gets_the_full_text_of_its_page(server: FeedServer, news_feed: str):
    result = poll(FeedSource(news_feed))
    harbour = next(a for a in result.articles if a.title == "Harbour reopens")
    assert not harbour.summary_only
    assert harbour.text == "\n\n".join(HARBOUR_TEXT)
    assert harbour.date == "2024-03-05" and harbour.source == "Portville Post"
    assert harbour.url == server.url("/articles/harbour")


def test_summary_only_item_whose_page_is_gone_keeps_its_summary(news_feed: str):
    result = poll(FeedSource(news_feed))
    gone = next(a for a in result.articles if a.title == "Gone story")
    assert gone.summary_only and gone.text == "Only this summary."
    assert any("/articles/gone: HTTP 404 Not Found" in e for e in result.errors)
    assert result.ok and len(result.articles) == 4


def test_full_text_in_the_feed_needs_no_page_and_dates_come_from_the_page_last(
    server: FeedServer, news_feed: str
):
    server.requests.clear()
    result = poll(FeedSource(news_feed))
    budget = next(a for a in result.articles if a.title == "Budget approved")
    assert not budget.summary_only and budget.text.startswith("The council approved")
    assert "/articles/in-feed" not in server.requests
    bridge = next(a for a in result.articles if a.title == "Bridge closed")
    assert bridge.date == "2024-03-07"  # the feed has none; the page's meta does
    assert result.pages_fetched == 2


def test_page_fetches_per_poll_are_capped_and_known_items_skipped(
    server: FeedServer, news_feed: str
):
    server.requests.clear()
    capped = poll(FeedSource(news_feed), max_pages=1)
    assert [p for p in server.requests if p.startswith("/articles/")] == ["/articles/harbour"]
    assert [a.summary_only for a in capped.articles] == [False, True, False, True]
    server.requests.clear()
    again = poll(FeedSource(news_feed), known_ids={a.id for a in capped.articles})
    assert again.articles == [] and again.skipped == 4
    assert server.requests == ["/news.rss"]


def test_extract_article_reads_title_date_text_and_language():
    page = article_page("Harbour reopens after storm", HARBOUR_TEXT)
    article = extract_article(page.encode("utf-8"), "http://example.com/a?utm_source=x#top")
    assert article is not None
    assert article.title == "Harbour reopens after storm"
    assert article.text == "\n\n".join(HARBOUR_TEXT)
    assert (article.date, article.lang, article.source) == ("2024-03-05", "en", "Portville Post")
    assert article.url == "http://example.com/a"
    named = extract_article(page, "http://example.com/a", FeedSource("http://x/", "Post"))
    assert named is not None and named.source == "Post"
    assert extract_article("<html><body><nav>Home</nav></body></html>", "http://x/") is None


def test_item_without_any_text_is_indexed_by_its_title():
    parsed = parse_feed(
        rss([rss_item("Headline only", "http://example.com/h", "")]).encode(),
        FeedSource("http://example.com/feed", source="Wire"),
    )
    article = item_to_article(parsed.items[0], None)
    assert (article.text, article.summary_only, article.source) == ("Headline only", True, "Wire")


# --- a careful fetch -------------------------------------------------------------------


def test_a_slow_server_times_out(server: FeedServer):
    with pytest.raises(FetchError, match=r"^timed out after 0\.5 s$"):
        fetch(server.url("/slow"), timeout=0.5, allow_private=True)


def test_a_trickling_server_hits_the_total_deadline(server: FeedServer):
    with pytest.raises(FetchError, match=r"^timed out after 0\.5 s$"):
        fetch(server.url("/drip"), timeout=0.5, allow_private=True)


def test_a_huge_response_is_cut_off_while_streaming(server: FeedServer):
    with pytest.raises(FetchError, match=r"^response larger than 100 kB$"):
        fetch(server.url("/huge"), max_bytes=100_000, allow_private=True)
    assert server.huge_done.wait(5)
    assert server.huge_sent < HUGE_BYTES  # we hung up long before the end
    with pytest.raises(FetchError, match=r"^response larger than 5 MB$"):
        fetch(server.url("/huge-declared"), allow_private=True)  # refused on Content-Length


def test_redirects_are_followed_and_bounded(server: FeedServer):
    arrived = fetch(server.url("/hop/3"), allow_private=True)
    assert arrived.content == b"arrived" and arrived.final_url == server.url("/hop/0")
    with pytest.raises(FetchError, match=r"^more than 2 redirects"):
        fetch(server.url("/hop/3"), max_redirects=2, allow_private=True)
    with pytest.raises(FetchError, match=r"^more than 5 redirects"):
        fetch(server.url("/loop"), allow_private=True)
    with pytest.raises(FetchError, match=r"^unsupported URL scheme 'file'"):
        fetch(server.url("/to-file"), allow_private=True)  # every hop is checked


def test_http_errors_are_one_line(server: FeedServer):
    with pytest.raises(FetchError, match=r"^HTTP 404 Not Found$"):
        fetch(server.url("/nothing-here"), allow_private=True)


@pytest.fixture
def no_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if anything opens a TCP connection."""

    def refuse(self: socket.socket, address: object) -> None:
        raise AssertionError(f"a connection to {address} was attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://10.0.0.1/feed", "refusing private address 10.0.0.1"),
        ("http://169.254.169.254/latest/meta-data/", "refusing link-local address 169.254.169.254"),
        ("http://[::1]/", "refusing loopback address ::1"),
        ("http://0.0.0.0/", "refusing unspecified address 0.0.0.0"),
        ("http://[::ffff:192.168.1.1]/", "refusing private address ::ffff:c0a8:101"),
        ("http://100.64.0.1/", "refusing non-public address 100.64.0.1"),
        ("http://localhost/", "refusing loopback address "),
        ("file:///etc/passwd", "unsupported URL scheme 'file': only http and https"),
        ("ftp://example.com/feed.xml", "unsupported URL scheme 'ftp'"),
    ],
)
def test_private_addresses_and_other_schemes_are_refused_before_connecting(
    no_connections: None, url: str, message: str
):
    with pytest.raises(FetchError, match="^" + re.escape(message)):
        fetch(url)


def test_the_local_server_itself_is_refused_unless_allowed(server: FeedServer):
    source = bench_source(server, GUARDIAN)
    server.requests.clear()
    refused = collect_feed(source)
    assert refused.error == "refusing loopback address 127.0.0.1"
    assert server.requests == []
    guarded = make_client(allow_private=False)  # refuses again, at connect time
    with guarded, pytest.raises(FetchError, match=r"^refusing loopback address 127\.0\.0\.1"):
        fetch(source.url, allow_private=True, client=guarded)
    assert server.requests == []


# --- settings --------------------------------------------------------------------------


def test_feed_settings_accept_urls_and_objects():
    assert parse_feed_settings("") == []
    assert parse_feed_settings('["https://a.example/rss", "http://b.example/atom"]') == [
        FeedSource("https://a.example/rss"),
        FeedSource("http://b.example/atom"),
    ]
    value = (
        '[{"url": " https://a.example/rss ", "source": " A News ", "lang": "fr-CA"}, '
        '"https://c.example/"]'
    )
    assert parse_feed_settings(value) == [
        FeedSource("https://a.example/rss", source="A News", lang="fr"),
        FeedSource("https://c.example/"),
    ]
    assert parse_feed_settings([{"url": "https://a.example/rss"}]) == [
        FeedSource("https://a.example/rss")
    ]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("https://a.example/rss", "feeds: not valid JSON"),
        ('{"url": "https://a.example/rss"}', "feeds: expected a JSON list, got an object"),
        ("[1]", "feeds: item 1: expected a URL or an object with 'url', got a number"),
        ('["ftp://a.example/rss"]', "feeds: item 1: 'ftp://a.example/rss' is not an http(s) URL"),
        ('["https://a.example/", "not a url"]', "feeds: item 2: 'not a url' is not an http(s)"),
        ('[{"source": "A"}]', "feeds: item 1: 'url' is missing"),
        ('[{"url": "https://a.example/", "titel": "A"}]', "unknown key 'titel' (expected url,"),
        ('[{"url": "https://a.example/", "lang": 5}]', "'lang' must be a string, got a number"),
        ('[{"url": "https://a.example/", "lang": "german"}]', "'german' is not a language code"),
        ('["https://a.example/rss", "https://A.example/rss/"]', "item 2 repeats item 1"),
    ],
)
def test_feed_settings_reject_garbage_with_a_clear_message(value: str, message: str):
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_feed_settings(value)
