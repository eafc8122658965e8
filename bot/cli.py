"""The `newsbot` command: ingest, reindex, ask, stats, bench (and run, for the bot)."""

from __future__ import annotations

import argparse
import asyncio
import calendar
import datetime
import json
import logging
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, cast

from pydantic import ValidationError

from bot.answer import Answer
from bot.config import Settings
from index.articles import ArticleError, clean_text, normalise_date

if TYPE_CHECKING:
    from bot.engine import Engine
    from bot.state import State
    from index.corpus import RebuildReport
    from index.embedding import Embedder
    from index.store_base import IngestReport

log = logging.getLogger("newsbot")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="newsbot", description="Answer questions about the news with quoted sources."
    )
    parser.add_argument("--data-dir", type=Path, help="overrides NEWSBOT_DATA_DIR")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    ingest = sub.add_parser(
        "ingest", help="add article files, folders or web pages (http/https URLs) to the index"
    )
    ingest.add_argument("paths", nargs="+", help="files, folders or http(s) URLs")
    ingest.add_argument(
        "--defer-embedding",
        action="store_true",
        help="store the passages and leave their vectors to `newsbot worker` processes "
        "(NEWSBOT_DATABASE_URL only)",
    )
    worker = sub.add_parser(
        "worker", help="embed the passages an ingest left waiting (NEWSBOT_DATABASE_URL only)"
    )
    worker.add_argument("--once", action="store_true", help="stop when none is left")
    worker.add_argument("--batch", type=int, default=16, help="passages taken at a time")

    sub.add_parser("reindex", help="rebuild the index from articles/ and the stored articles")
    sub.add_parser("poll", help="one round of feed polling (NEWSBOT_FEEDS and added feeds)")
    remove = sub.add_parser("remove", help="take articles out of the index, by id or link")
    remove.add_argument("refs", nargs="+", metavar="ID_OR_URL")

    ask = sub.add_parser("ask", help="answer questions from the index")
    ask.add_argument("questions", nargs="*", help="one or more questions")
    ask.add_argument("--file", type=Path, help="a file with one question per line")
    ask.add_argument("--json", action="store_true", help="one JSON object per question")
    ask.add_argument(
        "--since",
        type=date_argument,
        metavar="DATE",
        help="only articles dated on or after DATE: YYYY[-MM[-DD]], today, yesterday or Nd",
    )
    ask.add_argument(
        "--until",
        type=date_argument,
        metavar="DATE",
        help="only articles dated on or before DATE: YYYY[-MM[-DD]], today, yesterday or Nd",
    )
    ask.add_argument("--source", action="append", default=[], help="only this source")

    stats = sub.add_parser("stats", help="what the index holds")
    stats.add_argument("--json", action="store_true")

    bench = sub.add_parser("bench", help="benchmarks")
    bench_sub = bench.add_subparsers(dest="bench_command", required=True)
    retrieval = bench_sub.add_parser("retrieval", help="write a run file for a retrieval set")
    retrieval.add_argument("bench_dir", type=Path)
    retrieval.add_argument("--out", type=Path, required=True)
    retrieval.add_argument("--store", type=Path, help="where to keep the set's index")
    qa = bench_sub.add_parser(
        "qa", help="answers with verbatim quotes over a question set (e.g. newsqa-dev)"
    )
    qa.add_argument("bench_dir", type=Path, help="a folder with articles/ and questions.jsonl")
    qa.add_argument("--out", type=Path, help="write each answer (ask --json) to this file")
    followups = bench_sub.add_parser(
        "followups", help="two-turn conversations: the follow-up alone and as a reply"
    )
    followups.add_argument(
        "conversations", type=Path, nargs="?", help="a JSONL set (default: bench/followups/)"
    )
    followups.add_argument("--articles", type=Path, help="a folder with articles/ (newsqa-dev)")
    followups.add_argument("--out", type=Path, help="write each conversation's answers here")
    quality = bench_sub.add_parser("quality", help="the quality table over every public set")
    quality.add_argument("--split", choices=["dev", "test"], help="only this split")
    quality.add_argument("--sets", nargs="*", default=[], metavar="NAME", help="only these")
    quality.add_argument("--limit", type=int, help="first N queries of each set (quick runs)")
    quality.add_argument(
        "--quote-sample",
        type=int,
        default=100,
        help="questions per set answered for the quote metric",
    )
    quality.add_argument(
        "--refusal-sample", type=int, default=100, help="questions per side and pair for refusals"
    )
    quality.add_argument("--no-refusals", action="store_true")
    quality.add_argument("--calibrate", action="store_true", help="print rates by floor")

    sub.add_parser("run", help="run the Telegram bot (polling, or webhook if a URL is set)")
    health = sub.add_parser("healthcheck", help="exit 0 if the running bot's health endpoint is ok")
    health.add_argument("--timeout", type=float, default=5.0, help="seconds")
    return parser


_DATE_FORMS = "use YYYY, YYYY-MM or YYYY-MM-DD, or today, yesterday or Nd (N days ago)"
_DATE_ARGUMENT = re.compile(r"(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?")
_DAYS_AGO = re.compile(r"(\d{1,5})d")


def date_argument(value: str) -> str:
    """--since/--until: YYYY, YYYY-MM or YYYY-MM-DD as given, or today, yesterday, Nd
    (N days ago, local time) as YYYY-MM-DD; anything else is an argparse error."""
    text = clean_text(value).strip().lower()
    days = {"today": 0, "yesterday": 1}.get(text)
    if days is None and (ago := _DAYS_AGO.fullmatch(text)):
        days = int(ago.group(1))
    if days is not None:
        return (datetime.date.today() - datetime.timedelta(days=days)).isoformat()
    match = _DATE_ARGUMENT.fullmatch(text)
    if not match:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date; {_DATE_FORMS}")
    year, month, day = (int(part) if part else None for part in match.groups())
    if month is not None and not 1 <= month <= 12:
        raise argparse.ArgumentTypeError(f"{text}: month {month} is out of range; {_DATE_FORMS}")
    if month is not None and day is not None and not 1 <= day <= _days_in(year, month):
        raise argparse.ArgumentTypeError(
            f"{text}: day {day} is out of range for {text[:7]}; {_DATE_FORMS}"
        )
    try:
        return normalise_date(text) or text
    except ArticleError as exc:
        raise argparse.ArgumentTypeError(f"{exc}; {_DATE_FORMS}") from None


def _days_in(year: int | None, month: int) -> int:
    return calendar.monthrange(year or 2000, month)[1]  # year 0000: a leap year too


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        settings = Settings() if args.data_dir is None else Settings(data_dir=args.data_dir)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        print(f"newsbot: invalid setting: {problems}", file=sys.stderr)
        return 2
    try:
        handler = _COMMANDS[args.command]
        return handler(args, settings)
    except KeyboardInterrupt:
        return 130
    except _UserError as exc:
        print(f"newsbot: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        from index.store_base import StoreError

        if not isinstance(exc, StoreError):
            raise
        # A full disk, an index of a newer version: one sentence, not a traceback.
        print(f"newsbot: {exc}", file=sys.stderr)
        return 1


class _UserError(Exception):
    """An error the user can fix; printed as one sentence, without a traceback."""


def _engine(settings: Settings) -> Engine:
    from bot.engine import Engine
    from index.embedding import EmbeddingModelError
    from index.store_base import DatabaseUnavailable, StoreError

    try:
        return Engine(settings)
    except DatabaseUnavailable:
        raise  # a server that is down is no fault of the command: exit 1, as for the state
    except (StoreError, EmbeddingModelError) as exc:
        raise _UserError(str(exc)) from None


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    from bot.poll import PageError, ingest_url

    engine = _engine(settings)
    urls = [p for p in args.paths if p.startswith(("http://", "https://"))]
    paths = [Path(p) for p in args.paths if p not in urls]
    failures = 0
    for url in urls:
        try:
            article, _ = ingest_url(engine, settings, url)
            print(f"ingested {url}: {article.title}")
        except PageError as exc:
            print(f"skipped {exc}", file=sys.stderr)
            failures += 1
    if not paths:
        return 1 if failures and failures == len(urls) else 0
    if args.defer_embedding:
        report, errors = _ingest_deferred(engine, paths)
    else:
        report, errors = engine.ingest(paths, progress=sys.stderr.isatty())
    for error in errors:
        print(f"skipped {error}", file=sys.stderr)
    print(
        f"{report.added} added, {report.updated} updated, {report.unchanged} unchanged; "
        f"{report.passages} passages, {report.embedded} embedded"
    )
    return 1 if errors and not (report.added or report.updated or report.unchanged) else 0


def _ingest_deferred(engine: Engine, paths: list[Path]) -> tuple[IngestReport, list[str]]:
    """Ingest without embedding: the passages wait for `newsbot worker` processes."""
    from index.articles import load_articles
    from index.pg_store import PgStore

    store = engine.store
    if not isinstance(store, PgStore):
        raise _UserError("--defer-embedding needs the index in PostgreSQL (NEWSBOT_DATABASE_URL)")
    loaded = load_articles(paths)
    report = store.add_articles(
        loaded.articles, engine.embedder, progress=sys.stderr.isatty(), defer=True
    )
    return report, loaded.errors + report.rejected


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    """Embed waiting passages until interrupted (or, with --once, until none is left)."""
    from index.pg_store import PgStore
    from index.pg_worker import run_worker

    engine = _engine(settings)
    store = engine.store
    if not isinstance(store, PgStore):
        raise _UserError("`newsbot worker` needs the index in PostgreSQL (NEWSBOT_DATABASE_URL)")
    done = 0
    try:
        done = run_worker(
            store,
            engine.embedder,
            once=args.once,
            batch=args.batch,
            reopen=lambda: cast("PgStore", engine.store),  # the engine reopens a swapped index
        )
    except KeyboardInterrupt:
        pass
    finally:
        engine.close()
    print(f"{done} passages embedded")
    return 0


def cmd_poll(args: argparse.Namespace, settings: Settings) -> int:
    from bot.poll import poll_feeds
    from bot.state import open_state

    engine = _engine(settings)
    state = open_state(settings)
    if not settings.feeds and not state.feeds():
        raise _UserError("no feeds: set NEWSBOT_FEEDS or add one with /addfeed in the bot")
    report = poll_feeds(engine, state, settings)
    for url, error in report.failed.items():
        print(f"feed {url}: {error}", file=sys.stderr)
    for rejected in report.ingest.rejected:
        print(f"skipped {rejected}", file=sys.stderr)
    print(report.summary())
    if report.index_error:
        print(f"newsbot: {report.index_error}", file=sys.stderr)
        return 1
    return 0


def cmd_reindex(args: argparse.Namespace, settings: Settings) -> int:
    from index.corpus import RebuildInProgress
    from index.embedding import EmbeddingModelError, embedder_for

    try:
        embedder = embedder_for(settings)
        if settings.database_url is not None or settings.state_path.exists():
            report = asyncio.run(_reindex_holding_the_round(settings, embedder))
        else:  # no bot has run on this data: no round to keep out
            report = _rebuild(settings, embedder)
    except (RebuildInProgress, EmbeddingModelError) as exc:
        raise _UserError(str(exc)) from None
    for error in report.errors:
        print(f"skipped {error}", file=sys.stderr)
    print(
        f"reindexed {report.articles} articles into {report.passages} passages "
        f"({report.embedded} embedded, {report.reused} cached vectors available) "
        f"in {report.seconds:.1f} s"
    )
    return 0


def _rebuild(settings: Settings, embedder: Embedder) -> RebuildReport:
    from index.corpus import rebuild_store

    if settings.database_url is not None:  # built beside in a schema of its own, then swapped
        from index.corpus import open_database_index, reindex_in_database

        # whatever model built it: a reindex with another NEWSBOT_MODEL converts the index
        index = open_database_index(settings.database_url.get_secret_value(), embedder)
        try:
            return reindex_in_database(
                index, settings.data_dir, embedder, progress=sys.stderr.isatty()
            )
        finally:
            index.close()
    store, report = rebuild_store(settings.data_dir, embedder, progress=sys.stderr.isatty())
    store.close()
    return report


async def _reindex_holding_the_round(settings: Settings, embedder: Embedder) -> RebuildReport:
    """Rebuild while holding the bot's feed-poll-and-alert round (bot/jobs.py), as /reindex
    does: no bot process polls into the index being replaced, and none alerts the rebuilt
    stories as new (the watermark moves past them before the round is given up)."""
    from bot.jobs import NEWS, holding_job
    from bot.state import open_state

    state = open_state(settings)
    try:
        seconds = settings.job_lease_seconds
        async with holding_job(state, NEWS, seconds) as job:
            if job is not None:
                return await _rebuild_and_skip(settings, embedder, state)
        print("waiting for the bot's feed poll and alert round to end…", file=sys.stderr)
        async with holding_job(state, NEWS, seconds, wait_s=float("inf")):
            return await _rebuild_and_skip(settings, embedder, state)
    finally:
        state.close()


async def _rebuild_and_skip(settings: Settings, embedder: Embedder, state: State) -> RebuildReport:
    from bot.rounds import restart_watermark

    report = await asyncio.to_thread(_rebuild, settings, embedder)
    await asyncio.to_thread(restart_watermark, state)
    return report


def read_questions(args: argparse.Namespace) -> list[str]:
    """Questions from the arguments and from --file (one per line, blanks skipped), cleaned:
    bytes that are not UTF-8 (in arguments or the file) become U+FFFD, controls go."""
    questions = [clean_text(q).strip() for q in args.questions]
    if args.file:
        try:
            raw = args.file.read_bytes().decode("utf-8-sig", errors="replace")
        except OSError as exc:
            raise _UserError(f"cannot read {args.file}: {exc.strerror or exc}") from None
        questions += [clean_text(line).strip() for line in raw.splitlines()]
    # A question needs a word or a number: zero-width characters or punctuation alone
    # are not one.
    questions = [q for q in questions if any(c.isalnum() for c in q)]
    if not questions:
        raise _UserError("give at least one question, or --file with one question per line")
    return questions


def cmd_ask(args: argparse.Namespace, settings: Settings) -> int:
    from index.search import SearchFilters

    questions = read_questions(args)
    too_long = [q for q in questions if len(q) > settings.max_question_chars]
    if too_long:
        raise _UserError(
            f"a question is {len(too_long[0])} characters long; the limit is "
            f"{settings.max_question_chars}"
        )
    filters = None
    if args.since or args.until or args.source:
        filters = SearchFilters(since=args.since, until=args.until, sources=tuple(args.source))
    engine = _engine(settings)
    if engine.stats().passages == 0:
        raise _UserError(
            f"the index in {settings.store_dir} is empty: run `newsbot ingest PATH` or "
            "`newsbot reindex` first"
        )
    for answer in engine.ask(questions, filters=filters):
        if args.json:
            print(json.dumps(answer.to_json(), ensure_ascii=False))
        else:
            print(format_answer(answer))
    return 0


def format_answer(answer: Answer) -> str:
    """Plain text for a terminal: numbered verbatim quotes, each with its source and its
    story's sources, languages and days."""
    from bot.render import plain_text, render_story

    lines = [f"Q: {answer.question}"]
    if answer.period is not None and answer.dated:
        lines.append(f"   (only articles dated {answer.period})")
    elif answer.period is not None:
        lines.append(f"   (nothing dated {answer.period} answers this; other dates)")
    if not answer.answered:
        lines.append(f"A: no source. {answer.answer}")
        return "\n".join(lines) + "\n"
    if answer.phrased:
        lines.append(f"A: {answer.answer}")
    first_of_article: dict[str, int] = {}
    for c in answer.citations:
        origin = ", ".join(x for x in (c.source, c.date) if x) or "unknown source"
        lines.append(f"[{c.n}] « {c.quote} »")
        first = first_of_article.setdefault(c.article_id, c.n)
        if first != c.n:
            lines.append(f"    — the same article as [{first}]")
            continue
        lines.append(f"    — {origin}: {c.title}" + (f" <{c.url}>" if c.url else ""))
        if c.story is not None:
            lines.append(f"    {plain_text(render_story(c.story, 'en'))}")
    return "\n".join(lines) + "\n"


def cmd_remove(args: argparse.Namespace, settings: Settings) -> int:
    from index.corpus import RebuildInProgress

    engine = _engine(settings)
    missing = 0
    for ref in args.refs:
        try:
            article = engine.remove(ref)
        except RebuildInProgress as exc:
            raise _UserError(f"{exc}; remove the article after it") from None
        if article is None:
            print(f"newsbot: no indexed article has the id or link {ref!r}", file=sys.stderr)
            missing += 1
        else:
            origin = ", ".join(x for x in (article.source, article.date) if x)
            print(f"removed {article.id}: {article.title} ({origin})")
    return 1 if missing else 0


def cmd_stats(args: argparse.Namespace, settings: Settings) -> int:
    engine = _engine(settings)
    stats = engine.stats()
    if args.json:
        print(
            json.dumps(
                {
                    "articles": stats.articles,
                    "passages": stats.passages,
                    "sources": stats.sources,
                    "model": stats.model,
                    "last_update": stats.last_update,
                }
            )
        )
    else:
        print(
            f"{stats.articles} articles, {stats.passages} passages, {stats.sources} sources\n"
            f"dates {stats.first_date or '-'} .. {stats.last_date or '-'}\n"
            f"model {stats.model}\nindex {stats.index_bytes / 1e6:.1f} MB, "
            f"last update {stats.last_update or 'never'}"
        )
    return 0


def cmd_bench(args: argparse.Namespace, settings: Settings) -> int:
    from bench.retrieval import run_retrieval_bench

    if args.bench_command == "quality":
        from bench.quality import run_quality

        print(run_quality(args, settings))
        return 0
    if args.bench_command == "qa":
        from bench.qa import run_qa

        print(run_qa(args.bench_dir, settings, args.out))
        return 0
    if args.bench_command == "followups":
        from bench.followups import DEFAULT_ARTICLES, DEFAULT_SET, run_followups

        conversations, articles = args.conversations or DEFAULT_SET, args.articles
        print(run_followups(settings, conversations, articles or DEFAULT_ARTICLES, args.out))
        return 0
    from index.embedding import embedder_for, model_slug

    embedder = embedder_for(settings)
    store_dir = args.store or (
        settings.cache_dir / "bench" / model_slug(embedder.model_id) / args.bench_dir.resolve().name
    )
    summary = run_retrieval_bench(args.bench_dir, args.out, embedder, store_dir, settings)
    print(summary)
    return 0


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from telegram.error import InvalidToken

    from bot.app import run

    if settings.telegram_token is None:
        raise _UserError("set NEWSBOT_TELEGRAM_TOKEN to the token @BotFather gave you")
    if not args.verbose:
        logging.getLogger().setLevel(settings.log_level.upper())
    engine = _engine(settings)
    try:
        if engine.stats().articles == 0 and settings.articles_dir.is_dir():
            log.info("the index is empty: ingesting %s first", settings.articles_dir)
            report, errors = engine.ingest([settings.articles_dir])
            for error in errors:
                log.warning("skipped %s", error)
            log.info("%d articles, %d passages indexed", report.added, report.passages)
        run(settings, engine)
    except InvalidToken as exc:
        raise _UserError(f"Telegram refused the token: {exc}") from None
    finally:
        engine.close()
    return 0


def cmd_healthcheck(args: argparse.Namespace, settings: Settings) -> int:
    """For container probes: ask the running bot's health endpoint (both modes serve it)."""
    import urllib.error
    import urllib.request

    if not settings.health_path:
        raise _UserError("NEWSBOT_HEALTH_PATH is empty, so the bot serves no health endpoint")
    host = settings.listen_host
    host = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host
    host = f"[{host}]" if ":" in host else host
    url = f"http://{host}:{settings.listen_port}{settings.health_path}"
    try:
        with urllib.request.urlopen(url, timeout=args.timeout) as response:
            body = response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        print(f"unhealthy: {url} answered {exc.code}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        return 1
    print(body)
    return 0


_COMMANDS = {
    "ingest": cmd_ingest,
    "reindex": cmd_reindex,
    "worker": cmd_worker,
    "poll": cmd_poll,
    "ask": cmd_ask,
    "stats": cmd_stats,
    "remove": cmd_remove,
    "bench": cmd_bench,
    "run": cmd_run,
    "healthcheck": cmd_healthcheck,
}


if __name__ == "__main__":
    sys.exit(main())
