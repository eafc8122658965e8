"""What a question asks for, and what a sentence holds: the answer-type half of quote choice.

A sentence that restates the question is as close to it, for an embedding model, as the
sentence that answers it; what tells them apart is that the answer holds the kind of thing
the question asks for (a number for "how many", a name for "who", a date for "when", a
place for "where", a cause for "why") and something the question did not already say.
Rules for English, French, German and Spanish questions; sentences in any of them.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass

QUANTITY = "quantity"
MONEY = "money"
PERSON = "person"
DATE = "date"
PLACE = "place"
CAUSE = "cause"
OTHER = "other"
ANSWER_TYPES = (QUANTITY, MONEY, PERSON, DATE, PLACE, CAUSE)

_I = re.IGNORECASE
# On the same word, the first of these wins: "how much did X pay" is money, not a quantity.
_GAP = r"(?:[\w'’-]+\s+){0,2}"  # "which NASA researcher", "in which French département"
_PERSON_NOUNS = (
    r"person|people|man|woman|scientist|researcher|prosecutor|president|minister|official|"
    r"player|leader|chef|mayor|spokes\w*|author|company|brand|team|group|organi[sz]ation|"
    r"firm|party|club|app|pilot|singer|actor|artist|director|judge|candidate|"
    r"personne|homme|femme|[ée]lu|pr[ée]sident|ministre|joueur|chef|maire|porte-parole|"
    r"chercheu\w+|scientifique|procureur|marque|entreprise|soci[ée]t[ée]|organisation|"
    r"[ée]quipe|parti|club|pilote|auteur|juge|candidat\w*"
)
_PLACE_NOUNS = (
    r"town|city|country|region|state|d[ée]partement|desert|island|village|place|province|"
    r"area|site|continent|port|river|county|street|neighbou?rhood|"
    r"pays|ville|r[ée]gion|d[ée]sert|[îi]le|lieu|endroit|commune|quartier|rue|fleuve"
)
# On the same word, the first of these wins: "how much did X pay" is money, not a quantity.
_QUESTION_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    (
        MONEY,
        re.compile(
            r"\b(how much (money|did|does|do|will|would|was|were|is|are|has|have)\b.*\b(cost|"
            r"pay\w*|paid|spen\w+|earn\w*|worth|charg\w+|fine|sell\w*|sold|rais\w+)|how much money|"
            r"price|fee|salary|salaries|cost|co[uû]te?|prix|montant|somme|salaire|amende|"
            r"tarif|cours de l'action|[àa] quel cours|combien .*\b(pay|d[ée]pens|gagn|vers|"
            r"euros?|dollars?)|wie viel .*\b(kost|zahl|geld)|cu[aá]nto (dinero|cuesta|cost|"
            r"pag)|precio)\b",
            _I,
        ),
    ),
    (
        DATE,
        re.compile(
            r"\b(when|what (year|date|day|month|time|period)|which (year|date|day|month)|"
            r"since what|quand|(quelle|quel) (ann[ée]e|date|jour|mois|p[ée]riode)|depuis "
            r"quand|en quelle|[àa] quelle (date|[ée]poque)|wann|in welchem jahr|cu[aá]ndo|"
            r"en qu[eé] (a[nñ]o|fecha)|during what)\b",
            _I,
        ),
    ),
    (
        QUANTITY,
        re.compile(
            r"\b(how (many|much|long|far|old|big|large|tall|high|deep|often|fast)|"
            r"proportion|percentage|share of|rate|number of|size|height|length|distance|age|"
            r"toll|weigh\w*|dimensions?|combien|taux|nombre|hauteur|longueur|dur[ée]e|"
            r"pourcentage|bilan|poids|p[èe]se|num[ée]ro|wie (viele?|lange|weit|alt|gro[sß]|"
            r"hoch)|cu[aá]nt[oa]s?|porcentaje|cantidad|anzahl)\b",
            _I,
        ),
    ),
    (
        CAUSE,
        re.compile(
            r"\b(why|what (caused|led to|made)|for what reason|pourquoi|qu'est-ce qui "
            r"(?:a |ont )?(?:\w+ )?(provoqu|caus|envenim|entra[iî]n|expliqu)|pour quelle "
            r"raison|warum|weshalb|wieso|por qu[eé]|how come)",
            _I,
        ),
    ),
    (
        PLACE,
        re.compile(
            rf"\b(where|(which|what) {_GAP}({_PLACE_NOUNS})\b|o[uù]\b|(quel|quelle|quels|"
            rf"quelles) {_GAP}({_PLACE_NOUNS})\b|wo\b|woher|d[oó]nde|en qu[eé] (ciudad|"
            r"pa[ií]s))",
            _I,
        ),
    ),
    (
        PERSON,
        re.compile(
            rf"\b(who|whom|whose|names?|pr[ée]noms?|noms?|(which|what) {_GAP}({_PERSON_NOUNS})"
            rf"\b|(quel|quelle|quels|quelles) {_GAP}({_PERSON_NOUNS})\b|qui\b|comment "
            r"s'appell|wer\b|wem\b|wessen|qui[eé]n(es)?)",
            _I,
        ),
    ),
]

_NUMBER_WORDS = frozenset(
    re.findall(
        r"\S+",
        "two three four five six seven eight nine ten eleven twelve fifteen twenty thirty "
        "forty fifty sixty seventy eighty ninety hundred hundreds thousand thousands million "
        "millions billion billions dozen dozens half deux trois quatre cinq six sept huit "
        "neuf dix onze douze quinze vingt trente quarante cinquante soixante cent cents mille "
        "million millions milliard milliards dizaine dizaines centaine centaines moitié zwei "
        "drei vier fünf sechs sieben acht neun zehn zwanzig hundert tausend millionen dos "
        "tres cuatro cinco seis siete ocho nueve diez veinte cien mil millones",
    )
)
_DIGITS = re.compile(r"\d")
_MONEY = re.compile(
    r"[$€£¥]|\b(euros?|dollars?|cents?|centimes?|pesos?|roupies?|rupees?|couronnes?|"
    r"crowns?|livres? sterling|pounds?|francs?|yens?|yuans?|dollar|euro|usd|eur|"
    r"d[óo]lares|libras)\b",
    _I,
)
_PERCENT = re.compile(r"%|\b(percent|per cent|pour cent|por ciento|prozent)\b", _I)
_MONTHS = (
    r"january|february|march|april|may|june|july|august|september|october|november|december|"
    r"janvier|f[ée]vrier|mars|avril|mai|juin|juillet|ao[uû]t|septembre|octobre|novembre|"
    r"d[ée]cembre|januar|februar|m[äa]rz|juni|juli|oktober|dezember|enero|febrero|marzo|"
    r"abril|mayo|junio|julio|agosto|septiembre|octubre|noviembre|diciembre"
)
_DATE = re.compile(
    rf"\b({_MONTHS})\b|\b(1[5-9]|20)\d\d\b|\b(monday|tuesday|wednesday|thursday|friday|"
    r"saturday|sunday|lundi|mardi|mercredi|jeudi|vendredi|samedi|dimanche|yesterday|hier|"
    r"ayer|gestern|century|si[èe]cle)\b",
    _I,
)
_CAUSE = re.compile(
    r"\b(because|due to|owing to|as a result|caused by|since|thanks to|in order to|so that|"
    r"reason|parce que|parce qu|car|en raison|[àa] cause|gr[âa]ce [àa]|afin de|afin que|"
    r"pour que|faute de|raison|en effet|d[ûu] [àa]|dus? aux?|li[ée]e? [àa]|provoqu|"
    r"weil|wegen|aufgrund|da\b|porque|debido|a causa|gracias a)\b",
    _I,
)
_PLACE_PREP = re.compile(
    r"\b(in|at|near|from|à|au|aux|en|dans|près de|de|du|im|in der|bei|en el|en la)\s+"
    r"(?:l'|le |la |les |the )?[A-ZÀ-ÖØ-Þ]",
)
# A capitalised word that is not a sentence's first: a name, a place, an organisation.
_NAME = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-ZÀ-ÖØ-Þ][\w'’-]*[a-zà-öø-ÿ][\w'’-]*", re.MULTILINE)
_NAME_PAIR = re.compile(
    r"\b[A-ZÀ-ÖØ-Þ][a-zà-öø-ÿ'’-]+(?:\s+(?:de |da |van |von |del |le )?[A-ZÀ-ÖØ-Þ][\w'’-]+)+"
)
_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)


def expected_answer_type(question: str) -> str:
    """The kind of thing the question asks for (one of ANSWER_TYPES), or OTHER: the cue
    that comes first ("how many people were hurt when…" asks for a number, not a date),
    and on the same word the first of _QUESTION_PATTERNS ("how much did X pay": money)."""
    found = [
        (m.start(), order, kind)
        for order, (kind, pattern) in enumerate(_QUESTION_PATTERNS)
        if (m := pattern.search(question))
    ]
    return min(found)[2] if found else OTHER


# Sentences and words whose facts are kept: a question's candidates are mostly sentences
# other questions met before (the same news), and each costs ~1 ms to read.
_CACHED = 50_000


@functools.lru_cache(maxsize=_CACHED)
def fold(text: str) -> str:
    """Lower case without accents, so "Élysée" in a question matches "Elysée" in a quote."""
    if text.isascii():  # nothing to decompose
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


@dataclass(frozen=True)
class SentenceFacts:
    """What kinds of answer one sentence can give, and what it says beyond the question."""

    types: frozenset[str]
    novel: int  # names and numbers it holds that the question does not
    covered: float  # share of the question's names and numbers it repeats (any language)


@functools.lru_cache(maxsize=_CACHED)
def specifics(text: str) -> frozenset[str]:
    """The names and numbers of a text, folded: what stays the same across languages."""
    found = {fold(m.group()) for m in _NAME.finditer(text)}
    # A word of letters only folds to no digit (checked for every letter of Unicode), so
    # only the others are folded and looked through.
    found |= {
        t
        for t in (fold(w) for w in _TOKEN.findall(text) if not w.isalpha())
        if any(c.isdigit() for c in t)
    }
    return frozenset(found)


@functools.lru_cache(maxsize=_CACHED)
def sentence_types(sentence: str) -> frozenset[str]:
    """The answer types a sentence holds."""
    types = set()
    words = {fold(w) for w in _TOKEN.findall(sentence)}
    has_number = bool(_DIGITS.search(sentence)) or bool(words & _NUMBER_WORDS)
    if has_number:
        types.add(QUANTITY)
        if _MONEY.search(sentence):
            types.add(MONEY)
    if _PERCENT.search(sentence):
        types |= {QUANTITY}
    if _DATE.search(sentence):
        types.add(DATE)
    if _NAME_PAIR.search(sentence):
        types.add(PERSON)
    if _PLACE_PREP.search(sentence):
        types.add(PLACE)
    if _CAUSE.search(sentence):
        types.add(CAUSE)
    return frozenset(types)


def sentence_facts(sentence: str, question_specifics: frozenset[str]) -> SentenceFacts:
    own = specifics(sentence)
    covered = len(own & question_specifics) / len(question_specifics) if question_specifics else 0.0
    return SentenceFacts(sentence_types(sentence), len(own - question_specifics), covered)
