"""Follow-up benchmark: two-turn conversations, the second turn ambiguous alone.

    newsbot bench followups [SET] [--articles DIR] [--out FILE]

SET (default bench/followups/newsqa-dev-followups.jsonl, see its README) holds one
conversation a line: `first` and `followup`, each `{question, answer_keys}`, over the
articles of DIR (default ../shared/bench/newsqa-dev). The articles are indexed as
`newsbot bench qa` indexes them (same cache folder). The first turn is asked as any
question; the follow-up is asked twice: alone (no context: `Engine.ask`) and as a reply
to the first turn's answer (`Engine.ask_followup`, what the bot does with a reply).

A reply may also be a new question: each conversation's answer is also replied to with
the first question of the next conversation about another article ("switch"), which is
right when it is answered with that question's key (from outside the story).

And a reply may ask what the index does not hold: every unanswerable question of DIR's
questions.jsonl is asked as a reply to UNANSWERABLE_REPLIES conversations' answers, which
is right when the bot says it has no source (as for the same question asked alone).

A turn is answered with the key when one of its keys is a substring of a quote of the
first three citations (the scoring of bench/qa.py).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.qa import CITATIONS_SCORED, articles_by_file, load_questions, quote_has_key
from bench.quality import bench_cache
from bot.answer import Answer
from bot.config import Settings
from bot.followup import thread_of
from index.embedding import embedder_for

HERE = Path(__file__).resolve().parent
DEFAULT_SET = HERE / "followups" / "newsqa-dev-followups.jsonl"
DEFAULT_ARTICLES = HERE.parents[1] / "shared" / "bench" / "newsqa-dev"

Conversation = dict[str, dict[str, object]]
# Each unanswerable question is asked as a reply to this many conversations' first answers
# (spread over the set).
UNANSWERABLE_REPLIES = 3


@dataclass(frozen=True)
class Turns:
    """One conversation's answers: the first turn, the follow-up alone and as a reply,
    and the next conversation's first question as a reply (a switch)."""

    first: Answer
    alone: Answer
    reply: Answer
    switch: Answer


def has_key(answer: Answer, keys: Sequence[str]) -> bool:
    quotes = [c.quote for c in answer.citations[:CITATIONS_SCORED]] if answer.answered else []
    return any(quote_has_key(q, keys) for q in quotes)


def load_set(path: Path) -> list[Conversation]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def keys_of(turn: dict[str, object]) -> list[str]:
    return [str(k) for k in turn["answer_keys"]]  # type: ignore[attr-defined]


def question_of(turn: dict[str, object]) -> str:
    return str(turn["question"])


def switch_partner(conversations: Sequence[Conversation], i: int) -> int:
    """The next conversation (wrapping around) about another article than the i-th."""
    n = len(conversations)
    gold = conversations[i]["gold_file"]
    return next(j % n for j in range(i + 1, i + n) if conversations[j % n]["gold_file"] != gold)


def rate(hits: Sequence[bool]) -> str:
    return f"{sum(hits)}/{len(hits)} = {sum(hits) / len(hits):.2f}" if hits else "0/0"


def is_refusal(answer: Answer) -> bool:
    return not answer.answered and not answer.citations


def format_scores(
    name: str,
    conversations: Sequence[Conversation],
    turns: Sequence[Turns],
    unanswerable: tuple[Sequence[Answer], Sequence[Answer]],
    seconds: float,
) -> str:
    pairs = list(zip(conversations, turns, strict=True))
    first = [has_key(t.first, keys_of(c["first"])) for c, t in pairs]
    alone = [has_key(t.alone, keys_of(c["followup"])) for c, t in pairs]
    reply = [has_key(t.reply, keys_of(c["followup"])) for c, t in pairs]
    partners = [conversations[switch_partner(conversations, i)] for i in range(len(pairs))]
    switch = [
        has_key(t.switch, keys_of(p["first"])) for p, (_, t) in zip(partners, pairs, strict=True)
    ]
    switch_alone = [
        has_key(turns[conversations.index(p)].first, keys_of(p["first"])) for p in partners
    ]
    in_story = sum(t.reply.answered and t.reply.in_story for t in turns)
    elsewhere = sum(t.reply.answered and not t.reply.in_story for t in turns)
    refused = sum(not t.reply.answered for t in turns)
    left = sum(t.switch.answered and not t.switch.in_story for t in turns)
    after_good_first = [r for f, r in zip(first, reply, strict=True) if f]
    lines = [
        f"Follow-ups: {name}, {len(pairs)} conversations",
        "",
        f"| turn | answered with a key (first {CITATIONS_SCORED} citations) |",
        "|---|---|",
        f"| first turn | {rate(first)} |",
        f"| follow-up alone (no context) | {rate(alone)} |",
        f"| follow-up as a reply (context) | {rate(reply)} |",
        f"| follow-up as a reply, first turn answered with its key | {rate(after_good_first)} |",
        f"| another conversation's first question as a reply (switch) | {rate(switch)} |",
        f"| the same questions asked alone | {rate(switch_alone)} |",
        "",
        "| unanswerable question | refused (no source) |",
        "|---|---|",
        f"| asked alone | {rate([is_refusal(a) for a in unanswerable[0]])} |",
        f"| asked as a reply to an answer | {rate([is_refusal(a) for a in unanswerable[1]])} |",
        "",
        f"Follow-ups as a reply: {in_story} answered within the story, {elsewhere} from all "
        f"the news, {refused} no source. Switches: {left} answered from outside the story.",
        f"\nRun time: {seconds:.0f} s",
    ]
    return "\n".join(lines) + "\n"


def run_followups(
    settings: Settings,
    conversations_file: Path = DEFAULT_SET,
    articles_dir: Path = DEFAULT_ARTICLES,
    out: Path | None = None,
) -> str:
    """Index the articles, ask every conversation both ways, return the scores' table."""
    from bot.engine import Engine

    started = time.monotonic()
    articles_dir = articles_dir.resolve()
    articles, _ = articles_by_file(articles_dir)
    data_dir = bench_cache(settings, embedder_for(settings).model_id) / "qa" / articles_dir.name
    engine = Engine(settings.model_copy(update={"data_dir": data_dir, "llm_base_url": None}))
    conversations = load_set(conversations_file)

    def as_reply(question: str, first: Answer) -> Answer:
        thread = thread_of(first)
        if thread is None:  # the first turn found nothing: no story to keep
            return engine.ask([question])[0]
        return engine.ask_followup(question, thread)

    impossible = [str(q["question"]) for q in load_questions(articles_dir) if not q["answerable"]]
    try:
        engine.add_articles(articles)
        firsts = engine.ask([question_of(c["first"]) for c in conversations])
        alone = engine.ask([question_of(c["followup"]) for c in conversations])
        turns = []
        for i, (conversation, first) in enumerate(zip(conversations, firsts, strict=True)):
            partner = conversations[switch_partner(conversations, i)]
            reply = as_reply(question_of(conversation["followup"]), first)
            switch = as_reply(question_of(partner["first"]), first)
            turns.append(Turns(first, alone[i], reply, switch))
        step = max(1, len(conversations) // UNANSWERABLE_REPLIES)
        unanswerable = (
            engine.ask(impossible),
            [
                as_reply(question, firsts[(n + k * step) % len(firsts)])
                for n, question in enumerate(impossible)
                for k in range(UNANSWERABLE_REPLIES)
            ],
        )
    finally:
        engine.close()
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        rows = [
            {"id": c["id"], **{k: getattr(t, k).to_json() for k in Turns.__annotations__}}
            for c, t in zip(conversations, turns, strict=True)
        ]
        out.write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
        )
    seconds = time.monotonic() - started
    return format_scores(conversations_file.name, conversations, turns, unanswerable, seconds)


def main() -> None:
    print(run_followups(Settings()))


if __name__ == "__main__":
    main()
