"""What the bot says, in English and French: Telegram HTML templates and the command menus.

Templates hold HTML; `say` escapes every value put into them, so article titles, sources and
user input can never become markup.
"""

from __future__ import annotations

import html

from telegram import User

LANGUAGES = ("en", "fr")
DEFAULT_LANGUAGE = "en"

_TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "intro": "I answer questions about the news with the exact sentences of the articles "
        "I have read, each with its source, date and link. I never make anything up: when the "
        "articles say nothing on a subject, I say so.",
        "knows": "I know <b>{count}</b> {articles} from {sources}, {dates}.",
        "article_one": "article",
        "article_many": "articles",
        "dated_one": "dated {first}",
        "dated_range": "dated {first} to {last}",
        "knows_nothing": "My index is empty for now: an administrator has to add articles.",
        "how_private": "<b>How to ask</b>\nJust write your question here, in English or "
        "French, e.g. <i>who denied signing an accord?</i> Name a month or a day "
        "(<i>in September 2023</i>) to hear from the news of that date first.",
        "how_group": "In a group: <code>/ask your question</code>, reply to one of my "
        "messages, or mention {username}.",
        "help_more": "Commands: /ask, /subscribe, /subscriptions, /help.\n"
        "<code>/timeline topic</code> (or <i>what happened since July 2024 in Iceland?</i>): the "
        "story's dated quotes, oldest first.\n"
        "<code>/digest</code>: the top stories of this chat's topics since its last digest; "
        "<code>/digest daily 08:00 Europe/Paris</code> posts it every day (UTC unless you name "
        "a time zone), <code>/digest off</code> stops it, <code>/digest status</code> tells.",
        "no_source": "I found nothing on this in the news I have indexed, so I can't answer "
        "it. Try other words, or another subject.",
        "no_source_dated": "I found nothing on this in the news I have indexed dated {period}, "
        "so I can't answer it. Try without the date, or other words.",
        "other_dates": "Nothing dated {period} answers this; from other dates:",
        "followup_elsewhere": "Nothing in the story you replied to answers this. From all "
        "the news I have indexed:",
        "followup_gone": "The articles of the answer you replied to are no longer in my "
        "index. From all the news I have indexed:",
        "followup_nothing": "Nothing in the story you replied to answers this, nor anything "
        "else in the news I have indexed.",
        "how_followup": "<b>Follow-ups</b>\nReply to one of my answers to ask more about "
        "its story (<i>and when?</i>, <i>how many were hurt?</i>): I answer from that story's "
        "articles. Under each quote I say how many sources, languages and days its story "
        "spans; copies of one wire dispatch count as one source.",
        "story": "Story: {summary}",
        "story_same": "Story: the same as {n}.",
        "same_article": "Same article as {n}",
        "story_sources_one": "1 source",
        "story_sources_many": "{count} sources",
        "story_languages_one": "1 language",
        "story_languages_many": "{count} languages",
        "story_copies": "{names}: copies of one dispatch, counted once",
        "months": "Jan Feb Mar Apr May June July Aug Sept Oct Nov Dec",
        "empty_question": "Ask me a question after the command, e.g. "
        "<code>/ask who denied signing an accord?</code>",
        "empty_private": "Write your question as a text message.",
        "too_long": "Your question is {length} characters long; the limit is {limit}.",
        "slow_down": "You are asking faster than I can read ({limit} questions a minute). "
        "Please ask again in {seconds} s; I skip your questions until then.",
        "not_text": "I can only read text: please write your question.",
        "unknown_command": "I don't know that command. Write your question, or see /help.",
        "error": "Sorry, something went wrong while answering. Please try again in a moment.",
        "not_admin": "Sorry, this command is for the bot's administrators.",
        "reindex_started": "Reindexing… I keep answering from the current index meanwhile.",
        "reindex_progress": "Reindexing… {done}/{total} articles.",
        "reindex_done": "Reindex done: {articles} articles, {passages} passages "
        "({embedded} newly embedded) in {seconds} s.",
        "reindex_skipped": "{count} file(s) could not be read: see the logs.",
        "reindex_busy": "A reindex is already running. Please wait for it to finish.",
        "reindex_failed": "The reindex failed ({error}). The previous index is still in use.",
        "stats": "<b>Index</b>\nArticles: {articles}\nPassages: {passages}\n"
        "Sources: {sources}\nDates: {first} – {last}\nModel: {model}\n"
        "Index size: {size}\nLast update: {last_update}",
        "never": "never",
        "cmd_start": "What this bot knows",
        "cmd_help": "How to ask",
        "cmd_ask": "Ask a question about the news",
        "cmd_reindex": "Rebuild the index (admins)",
        "cmd_stats": "What the index holds (admins)",
        "cmd_subscribe": "Get alerts about a topic",
        "cmd_unsubscribe": "Stop alerts about a topic",
        "cmd_subscriptions": "This chat's topics",
        "cmd_feeds": "Followed feeds and their state (admins)",
        "cmd_addfeed": "Follow an RSS or Atom feed (admins)",
        "cmd_ingest": "Index one article page (admins)",
        "cmd_remove": "Take an article out of the index (admins)",
        "cmd_digest": "Top stories of this chat's topics; daily digest",
        "cmd_timeline": "How a story developed, oldest first",
        "digest_usage": "<code>/digest</code> posts the top stories of this chat's topics since "
        "its last digest. <code>/digest daily 08:00 Europe/Paris</code> posts it every day at "
        "that time (UTC unless you name a time zone), <code>/digest off</code> stops that, "
        "<code>/digest status</code> tells.",
        "digest_bad_time": "I can't read {time} as a time of day: write it as HH:MM, e.g. "
        "<code>/digest daily 08:00</code>.",
        "digest_bad_zone": "I don't know the time zone {zone}: name it as in the tz database, "
        "e.g. <code>Europe/Paris</code>, <code>America/New_York</code> or <code>UTC</code>.",
        "digest_not_chat_admin": "Sorry, only this group's administrators can post or set its "
        "digest.",
        "digest_daily_set": "Daily digest: every day at {time} ({zone}), from today.",
        "digest_daily_set_tomorrow": "Daily digest: every day at {time} ({zone}), from tomorrow.",
        "digest_daily_no_topics": "I will post it once this chat follows a topic: "
        "<code>/subscribe floods in Europe</code>",
        "digest_daily_at": "Daily digest: every day at {time} ({zone}).",
        "digest_no_daily": "No daily digest here: <code>/digest daily 08:00</code> sets one.",
        "digest_off": "Daily digest stopped. <code>/digest</code> still posts one on demand.",
        "digest_last": "Last digest: the news indexed until {when}.",
        "digest_no_topics": "This chat follows no topic, so I have nothing to digest. Subscribe "
        "first, e.g. <code>/subscribe floods in Europe</code>, then ask for <code>/digest</code>.",
        "digest_header": "📰 <b>Digest</b>: {count} {stories} on this chat's topics since {since}.",
        "digest_header_first": "📰 <b>Digest</b>: {count} {stories} on this chat's topics in the "
        "last 24 hours (this chat's first digest).",
        "digest_best": "Here are the best {shown}.",
        "digest_new_one": "new story",
        "digest_new_many": "new stories",
        "digest_story_one": "story",
        "digest_story_many": "stories",
        "digest_nothing": "Nothing new on this chat's topics since {since}.",
        "digest_nothing_first": "Nothing on this chat's topics in the last 24 hours (this "
        "chat's first digest).",
        "timeline_usage": "Tell me the story after the command, e.g. "
        "<code>/timeline eruption in Iceland</code>.",
        "timeline_header": "🕰 <b>{topic}</b>: how it developed, oldest first.",
        "timeline_header_since": "🕰 <b>{topic}</b> since {since}, oldest first.",
        "timeline_undated": "<i>Undated articles:</i>",
        "timeline_nothing": "I found nothing on {topic} in the news I have indexed.",
        "timeline_nothing_since": "I found nothing on {topic} dated {since} or later in the news "
        "I have indexed.",
        "subscribe_usage": "Tell me the topic after the command, in a few words or a sentence, "
        "e.g. <code>/subscribe floods in Germany</code>",
        "topic_too_long": "A topic is at most {limit} characters long; yours has {length}.",
        "too_many_topics": "This chat already follows {limit} topics, the most it can. Remove "
        "one with /unsubscribe first.",
        "subscribed": "Subscribed: <b>{topic}</b>. When new articles about it arrive, I post "
        "them here.",
        "already_subscribed": "This chat already follows <b>{topic}</b>.",
        "unsubscribe_usage": "Say which topic to drop: its number in /subscriptions "
        "(<code>/unsubscribe 2</code>), its words, or <code>/unsubscribe all</code>.",
        "unsubscribed": "Unsubscribed: <b>{topic}</b>.",
        "unsubscribed_all": "All {count} topic(s) of this chat removed.",
        "not_subscribed": "This chat does not follow <b>{topic}</b>. See /subscriptions.",
        "no_subscriptions": "This chat follows no topic. Add one with "
        "<code>/subscribe topic</code>.",
        "subscription_list": "<b>Topics followed here</b>\n{items}",
        "subscriptions_paused": "Alerts are paused: I could not post here. Subscribing again "
        "resumes them.",
        "not_chat_admin": "Sorry, only this group's administrators can change its subscriptions.",
        "no_feeds": "I follow no feed yet. Add one with <code>/addfeed URL</code>, or set "
        "NEWSBOT_FEEDS.",
        "feeds_header": "<b>Feeds</b> ({count})",
        "feed_entry": "<b>{n}.</b> {url}\nSource: {source} · last poll: {polled} · "
        "{articles} article(s)",
        "feed_error": "Last error: {error}",
        "addfeed_usage": "Give the feed's address: <code>/addfeed https://example.org/rss</code>",
        "addfeed_refused": "I can't follow {url}: {error}",
        "addfeed_known": "I already follow {url}.",
        "addfeed_polling": "Feed added: {url}. Polling it now…",
        "addfeed_done": "Feed added and polled: {url}. {count} new article(s) indexed.",
        "addfeed_failed": "Feed added: {url}, but its first poll failed: {error}. I will try "
        "again at every poll; /feeds shows its state.",
        "ingest_usage": "Give the article's address: "
        "<code>/ingest https://example.org/news/1</code>",
        "ingested": "Indexed: <b>{title}</b> ({source}, {date}).",
        "ingest_unchanged": "Already indexed, unchanged: <b>{title}</b>.",
        "ingest_failed": "Nothing indexed: {error}",
        "remove_usage": "Give the article's link or id: "
        "<code>/remove https://example.org/news/1</code>",
        "removed": "Removed from the index: <b>{title}</b> ({source}, {date}). It is no "
        "longer quoted or alerted.",
        "remove_unknown": "No indexed article has the link or id {ref}.",
    },
    "fr": {
        "intro": "Je réponds aux questions sur l'actualité avec les phrases exactes des "
        "articles que j'ai lus, chacune avec sa source, sa date et son lien. Je n'invente "
        "rien : quand les articles ne disent rien d'un sujet, je le dis.",
        "knows": "Je connais <b>{count}</b> {articles} (sources : {sources} ; {dates}).",
        "article_one": "article",
        "article_many": "articles",
        "dated_one": "date : {first}",
        "dated_range": "du {first} au {last}",
        "knows_nothing": "Mon index est vide pour l'instant : un administrateur doit ajouter "
        "des articles.",
        "how_private": "<b>Comment poser une question</b>\nÉcrivez-la ici, en français ou en "
        "anglais, par exemple <i>qui a nié la signature d'un accord ?</i> Nommez un mois ou "
        "un jour (<i>en septembre 2023</i>) pour entendre d'abord les nouvelles de cette date.",
        "how_group": "Dans un groupe : <code>/ask votre question</code>, répondez à l'un de "
        "mes messages, ou mentionnez {username}.",
        "help_more": "Commandes : /ask, /subscribe, /subscriptions, /help.\n"
        "<code>/timeline sujet</code> (ou <i>que s'est-il passé depuis juillet 2024 en "
        "Islande ?</i>) : les citations datées de l'histoire, de la plus ancienne à la plus "
        "récente.\n"
        "<code>/digest</code> : les principales nouvelles des sujets de ce chat depuis son "
        "dernier résumé ; <code>/digest daily 08:00 Europe/Paris</code> le publie chaque jour "
        "(en UTC si vous ne nommez pas de fuseau), <code>/digest off</code> l'arrête, "
        "<code>/digest status</code> dit où il en est.",
        "no_source": "Je n'ai rien trouvé à ce sujet dans les articles indexés, je ne peux "
        "donc pas répondre. Essayez d'autres mots, ou un autre sujet.",
        "no_source_dated": "Je n'ai rien trouvé à ce sujet dans les articles indexés datés "
        "{period}, je ne peux donc pas répondre. Essayez sans la date, ou avec d'autres mots.",
        "other_dates": "Rien de daté {period} n'y répond ; à d'autres dates :",
        "followup_elsewhere": "Rien dans le sujet auquel vous répondez n'y répond. Dans "
        "l'ensemble des articles indexés :",
        "followup_gone": "Les articles de la réponse à laquelle vous répondez ne sont plus "
        "dans mon index. Dans l'ensemble des articles indexés :",
        "followup_nothing": "Rien dans le sujet auquel vous répondez n'y répond, ni ailleurs "
        "dans les articles indexés.",
        "how_followup": "<b>Questions de suite</b>\nRépondez à l'une de mes réponses pour en "
        "savoir plus sur son sujet (<i>et quand ?</i>, <i>combien de blessés ?</i>) : je "
        "réponds avec les articles de ce sujet. Sous chaque citation, je dis combien de "
        "sources, de langues et de jours couvre son sujet ; les copies d'une même dépêche "
        "comptent pour une source.",
        "story": "Sujet : {summary}",
        "story_same": "Sujet : le même qu'en {n}.",
        "same_article": "Même article qu'en {n}",
        "story_sources_one": "1 source",
        "story_sources_many": "{count} sources",
        "story_languages_one": "1 langue",
        "story_languages_many": "{count} langues",
        "story_copies": "{names} : copies d'une même dépêche, comptées une fois",
        "months": "janv. févr. mars avr. mai juin juil. août sept. oct. nov. déc.",
        "empty_question": "Posez votre question après la commande, par exemple "
        "<code>/ask qui a nié la signature d'un accord ?</code>",
        "empty_private": "Écrivez votre question dans un message texte.",
        "too_long": "Votre question fait {length} caractères ; la limite est de {limit}.",
        "slow_down": "Vous posez des questions plus vite que je ne lis ({limit} par minute). "
        "Reposez-la dans {seconds} s ; d'ici là, je passe vos questions.",
        "not_text": "Je ne lis que du texte : écrivez votre question.",
        "unknown_command": "Je ne connais pas cette commande. Écrivez votre question, ou "
        "voyez /help.",
        "error": "Désolé, une erreur s'est produite. Réessayez dans un instant.",
        "not_admin": "Désolé, cette commande est réservée aux administrateurs du bot.",
        "reindex_started": "Réindexation… Je continue de répondre avec l'index actuel.",
        "reindex_progress": "Réindexation… {done}/{total} articles.",
        "reindex_done": "Réindexation terminée : {articles} articles, {passages} passages "
        "({embedded} nouveaux vecteurs) en {seconds} s.",
        "reindex_skipped": "{count} fichier(s) illisible(s) : voir les journaux.",
        "reindex_busy": "Une réindexation est déjà en cours. Attendez qu'elle se termine.",
        "reindex_failed": "La réindexation a échoué ({error}). L'index précédent reste en service.",
        "stats": "<b>Index</b>\nArticles : {articles}\nPassages : {passages}\n"
        "Sources : {sources}\nDates : {first} – {last}\nModèle : {model}\n"
        "Taille de l'index : {size}\nDernière mise à jour : {last_update}",
        "never": "jamais",
        "cmd_start": "Ce que sait ce bot",
        "cmd_help": "Comment poser une question",
        "cmd_ask": "Poser une question sur l'actualité",
        "cmd_reindex": "Reconstruire l'index (admins)",
        "cmd_stats": "Contenu de l'index (admins)",
        "cmd_subscribe": "Recevoir des alertes sur un sujet",
        "cmd_unsubscribe": "Arrêter les alertes sur un sujet",
        "cmd_subscriptions": "Les sujets suivis ici",
        "cmd_feeds": "Flux suivis et leur état (admins)",
        "cmd_addfeed": "Suivre un flux RSS ou Atom (admins)",
        "cmd_ingest": "Indexer une page d'article (admins)",
        "cmd_remove": "Retirer un article de l'index (admins)",
        "cmd_digest": "Nouvelles des sujets suivis ; résumé quotidien",
        "cmd_timeline": "Comment une histoire a évolué, dans l'ordre",
        "digest_usage": "<code>/digest</code> publie les principales nouvelles des sujets de ce "
        "chat depuis son dernier résumé. <code>/digest daily 08:00 Europe/Paris</code> le publie "
        "chaque jour à cette heure (en UTC si vous ne nommez pas de fuseau), "
        "<code>/digest off</code> l'arrête, <code>/digest status</code> dit où il en est.",
        "digest_bad_time": "Je ne lis pas {time} comme une heure : écrivez-la HH:MM, par exemple "
        "<code>/digest daily 08:00</code>.",
        "digest_bad_zone": "Je ne connais pas le fuseau horaire {zone} : nommez-le comme dans la "
        "base tz, par exemple <code>Europe/Paris</code>, <code>America/Montreal</code> ou "
        "<code>UTC</code>.",
        "digest_not_chat_admin": "Désolé, seuls les administrateurs de ce groupe peuvent publier "
        "ou régler son résumé.",
        "digest_daily_set": "Résumé quotidien : chaque jour à {time} ({zone}), dès aujourd'hui.",
        "digest_daily_set_tomorrow": "Résumé quotidien : chaque jour à {time} ({zone}), à partir "
        "de demain.",
        "digest_daily_no_topics": "Je le publierai dès que ce chat suivra un sujet : "
        "<code>/subscribe inondations en Europe</code>",
        "digest_daily_at": "Résumé quotidien : chaque jour à {time} ({zone}).",
        "digest_no_daily": "Pas de résumé quotidien ici : <code>/digest daily 08:00</code> en "
        "règle un.",
        "digest_off": "Résumé quotidien arrêté. <code>/digest</code> en publie toujours un à la "
        "demande.",
        "digest_last": "Dernier résumé : l'actualité indexée jusqu'au {when}.",
        "digest_no_topics": "Ce chat ne suit aucun sujet : je n'ai rien à résumer. Abonnez-le "
        "d'abord, par exemple <code>/subscribe inondations en Europe</code>, puis demandez "
        "<code>/digest</code>.",
        "digest_header": "📰 <b>Résumé</b> : {count} {stories} sur les sujets de ce chat depuis "
        "{since}.",
        "digest_header_first": "📰 <b>Résumé</b> : {count} {stories} sur les sujets de ce chat "
        "ces dernières 24 heures (son premier résumé).",
        "digest_best": "Voici les {shown} meilleures.",
        "digest_new_one": "nouvelle histoire",
        "digest_new_many": "nouvelles histoires",
        "digest_story_one": "histoire",
        "digest_story_many": "histoires",
        "digest_nothing": "Rien de nouveau sur les sujets de ce chat depuis {since}.",
        "digest_nothing_first": "Rien sur les sujets de ce chat ces dernières 24 heures (son "
        "premier résumé).",
        "timeline_usage": "Donnez l'histoire après la commande, par exemple "
        "<code>/timeline éruption en Islande</code>.",
        "timeline_header": "🕰 <b>{topic}</b> : son déroulement, du plus ancien au plus récent.",
        "timeline_header_since": "🕰 <b>{topic}</b> depuis le {since}, du plus ancien au plus "
        "récent.",
        "timeline_undated": "<i>Articles sans date :</i>",
        "timeline_nothing": "Je n'ai rien trouvé sur {topic} dans l'actualité indexée.",
        "timeline_nothing_since": "Je n'ai rien trouvé sur {topic} daté du {since} ou après dans "
        "l'actualité indexée.",
        "subscribe_usage": "Donnez le sujet après la commande, en quelques mots ou une phrase, "
        "par exemple <code>/subscribe inondations en Allemagne</code>",
        "topic_too_long": "Un sujet fait au plus {limit} caractères ; le vôtre en fait {length}.",
        "too_many_topics": "Ce chat suit déjà {limit} sujets, le maximum. Retirez-en un avec "
        "/unsubscribe d'abord.",
        "subscribed": "Abonnement enregistré : <b>{topic}</b>. Je publierai ici les nouveaux "
        "articles sur ce sujet.",
        "already_subscribed": "Ce chat suit déjà <b>{topic}</b>.",
        "unsubscribe_usage": "Indiquez le sujet à retirer : son numéro dans /subscriptions "
        "(<code>/unsubscribe 2</code>), ses mots, ou <code>/unsubscribe all</code>.",
        "unsubscribed": "Désabonnement : <b>{topic}</b>.",
        "unsubscribed_all": "Les {count} sujet(s) de ce chat sont retirés.",
        "not_subscribed": "Ce chat ne suit pas <b>{topic}</b>. Voyez /subscriptions.",
        "no_subscriptions": "Ce chat ne suit aucun sujet. Ajoutez-en un avec "
        "<code>/subscribe sujet</code>.",
        "subscription_list": "<b>Sujets suivis ici</b>\n{items}",
        "subscriptions_paused": "Les alertes sont suspendues : je n'ai pas pu publier ici. "
        "S'abonner de nouveau les relance.",
        "not_chat_admin": "Désolé, seuls les administrateurs de ce groupe peuvent modifier ses "
        "abonnements.",
        "no_feeds": "Je ne suis encore aucun flux. Ajoutez-en un avec "
        "<code>/addfeed URL</code>, ou réglez NEWSBOT_FEEDS.",
        "feeds_header": "<b>Flux</b> ({count})",
        "feed_entry": "<b>{n}.</b> {url}\nSource : {source} · dernière lecture : {polled} · "
        "{articles} article(s)",
        "feed_error": "Dernière erreur : {error}",
        "addfeed_usage": "Donnez l'adresse du flux : <code>/addfeed https://example.org/rss</code>",
        "addfeed_refused": "Je ne peux pas suivre {url} : {error}",
        "addfeed_known": "Je suis déjà {url}.",
        "addfeed_polling": "Flux ajouté : {url}. Lecture en cours…",
        "addfeed_done": "Flux ajouté et lu : {url}. {count} nouvel(s) article(s) indexé(s).",
        "addfeed_failed": "Flux ajouté : {url}, mais sa première lecture a échoué : {error}. "
        "Je réessaierai à chaque tour ; /feeds montre son état.",
        "ingest_usage": "Donnez l'adresse de l'article : "
        "<code>/ingest https://example.org/news/1</code>",
        "ingested": "Indexé : <b>{title}</b> ({source}, {date}).",
        "ingest_unchanged": "Déjà indexé, sans changement : <b>{title}</b>.",
        "ingest_failed": "Rien n'a été indexé : {error}",
        "remove_usage": "Donnez le lien ou l'identifiant de l'article : "
        "<code>/remove https://example.org/news/1</code>",
        "removed": "Retiré de l'index : <b>{title}</b> ({source}, {date}). Il ne sera plus "
        "cité ni signalé.",
        "remove_unknown": "Aucun article indexé n'a le lien ou l'identifiant {ref}.",
    },
}

# Command menus: which commands each kind of chat shows (descriptions come from _TEXTS).
PRIVATE_COMMANDS = (
    "ask",
    "timeline",
    "subscribe",
    "unsubscribe",
    "subscriptions",
    "digest",
    "help",
    "start",
)
GROUP_COMMANDS = ("ask", "timeline", "subscriptions", "help")
GROUP_ADMIN_COMMANDS = (
    "ask",
    "timeline",
    "subscribe",
    "unsubscribe",
    "subscriptions",
    "digest",
    "help",
)
ADMIN_COMMANDS = (
    *PRIVATE_COMMANDS,
    "reindex",
    "stats",
    "feeds",
    "addfeed",
    "ingest",
    "remove",
)


def language_of(user: User | None) -> str:
    """French for users whose Telegram is in French, English for everyone else."""
    code = (user.language_code or "") if user else ""
    return "fr" if code.lower().startswith("fr") else DEFAULT_LANGUAGE


class Html(str):
    """Text that is already Telegram HTML: `say` inserts it as it is."""


def say(lang: str, key: str, **values: object) -> Html:
    """The template `key` in `lang` (English where missing), its values HTML-escaped unless
    they are `Html` already."""
    template = _TEXTS.get(lang, _TEXTS[DEFAULT_LANGUAGE]).get(key) or _TEXTS[DEFAULT_LANGUAGE][key]
    escaped = {
        k: v if isinstance(v, Html) else html.escape(str(v), quote=False) for k, v in values.items()
    }
    return Html(template.format(**escaped))


def command_menu(commands: tuple[str, ...], lang: str) -> list[tuple[str, str]]:
    """(command, description) pairs for set_my_commands."""
    return [(name, say(lang, f"cmd_{name}")) for name in commands]
