"""News for the alert tests: articles written for them (English and French), served as
article pages and a small RSS feed by the local feed server (tests/feed_server.py)."""

from __future__ import annotations

import html
from dataclasses import dataclass

from tests.feed_server import FeedServer

RSS = "application/rss+xml"
PUBLISHED = "Wed, 10 Jul 2024 08:00:00 +0000"
DATE = "2024-07-10"
SOURCE = "Wire Test"


@dataclass(frozen=True)
class Story:
    title: str
    paragraphs: tuple[str, ...]
    lang: str = "en"

    @property
    def lead(self) -> str:
        return self.paragraphs[0].split(". ")[0] + "."


FLOODS = Story(
    "Floods force thousands from their homes in Bavaria",
    (
        "Heavy rain swept across southern Germany on Sunday, and rivers in Bavaria burst their "
        "banks in dozens of towns. Firefighters evacuated more than four thousand residents "
        "from low-lying districts of Passau and Regensburg as the Danube rose above its 2013 "
        "record.",
        "The regional government said two people had drowned. The damage to roads, farms and "
        "houses would run into hundreds of millions of euros, according to a first estimate. "
        "Insurers said claims were already arriving by the thousand.",
        "Forecasters expect more rain in the Alps until Wednesday. Dams upstream are being "
        "watched around the clock, and schools in the flooded districts stay closed.",
    ),
)
CHESS = Story(
    "Norwegian wins rapid chess title in Samarkand",
    (
        "A Norwegian grandmaster won the world rapid chess championship in Samarkand on Friday "
        "after a tense final round against his Indian rival. The tournament drew two hundred "
        "players from sixty countries to the Uzbek city. Organisers had built a new hall for "
        "the event.",
        "Spectators filled the galleries for the last games. The prize fund of one million "
        "dollars was the largest in the history of rapid chess. The blitz championship begins "
        "on Saturday in the same hall.",
    ),
)
TOUR = Story(
    "Tour de France : victoire d'étape au sommet du Tourmalet",
    (
        "Le coureur slovène a remporté mercredi la quatorzième étape du Tour de France au "
        "sommet du col du Tourmalet, après une attaque à quatre kilomètres de l'arrivée. Il "
        "repousse son rival danois à plus d'une minute au classement général. L'arrivée à Nice "
        "est prévue dans une semaine.",
        "Des dizaines de milliers de spectateurs s'étaient massés sur les pentes du col "
        "pyrénéen malgré la chaleur. Jeudi, le peloton affrontera une étape de plaine entre Pau "
        "et Toulouse. Elle est promise aux sprinteurs.",
    ),
    lang="fr",
)
VOLCANO = Story(
    "Volcano erupts again near Grindavik in Iceland",
    (
        "A volcanic eruption began on Tuesday night on the Reykjanes peninsula in south-west "
        "Iceland, the country's meteorological office said. Lava fountains up to fifty metres "
        "high poured out of a three-kilometre fissure north of the fishing town of Grindavik. "
        "The town had been evacuated hours earlier.",
        "Flights at Keflavik airport were not affected. The Blue Lagoon spa closed as a "
        "precaution. Scientists said the eruption was the seventh in the area since December.",
    ),
)
BAKERY = Story(
    "Le prix de la baguette augmente à Lyon",
    (
        "Les boulangers lyonnais ont relevé cette semaine le prix de la baguette de dix "
        "centimes, invoquant la hausse du coût de la farine et de l'électricité. La baguette "
        "tradition se vend désormais un euro quarante dans la plupart des quartiers. Les "
        "clients, eux, font leurs comptes.",
        "La chambre des métiers estime que la moitié des boulangeries artisanales de la région "
        "ont vu leurs factures d'énergie doubler en deux ans. Plusieurs enseignes de "
        "supermarché maintiennent un prix inférieur à un euro. Les syndicats de boulangers "
        "demandent une aide de l'État.",
    ),
    lang="fr",
)
MUSEUM = Story(
    "Maritime museum opens on the Gdansk waterfront",
    (
        "A maritime museum opened on Saturday on the waterfront of Gdansk, in northern Poland, "
        "after six years of building works. Its halls hold three restored sailing ships and "
        "two thousand objects recovered from wrecks in the Baltic Sea. The city expects half a "
        "million visitors a year.",
        "Entry is free for children until the end of the summer. The museum's director said "
        "divers would keep bringing finds from the seabed for years to come.",
    ),
)
WIND = Story(
    "Le parc éolien en mer de Saint-Nazaire produit à pleine puissance",
    (
        "Le parc éolien en mer au large de Saint-Nazaire fonctionne désormais à pleine "
        "puissance, a annoncé mardi son exploitant. Ses quatre-vingts éoliennes couvrent "
        "l'équivalent de la consommation de sept cent mille habitants. Le chantier avait duré "
        "trois ans.",
        "Les pêcheurs de la région restent partagés sur l'effet des machines sur les bancs de "
        "poissons. Un comité de suivi publiera ses premières mesures à l'automne. Deux autres "
        "parcs sont en construction sur la façade atlantique.",
    ),
    lang="fr",
)

CHERRIES = Story(
    "Record cherry harvest in Kent",
    (
        "Fruit growers in Kent picked a record cherry harvest this summer, the county's "
        "farmers' union said on Thursday. A warm spring and few late frosts gave the orchards "
        "their best year since records began. Prices at the wholesale market fell by a fifth.",
        "Growers warned that they had struggled to find enough pickers. Several farms left "
        "fruit on the trees at the end of the season.",
    ),
)


def article_page(story: Story) -> str:
    """The story as a news site's HTML page."""
    body = "".join(f"<p>{html.escape(p)}</p>" for p in story.paragraphs)
    title = html.escape(story.title)
    return (
        f'<html lang="{story.lang}"><head><title>{title}</title>'
        f'<meta property="og:site_name" content="{SOURCE}"></head><body><article>'
        f"<h1>{title}</h1>{body}</article></body></html>"
    )


class Wire:
    """A news site on the feed server: /wire.rss lists the items, each links to its page."""

    def __init__(self, server: FeedServer, path: str = "/wire.rss") -> None:
        self.server = server
        self.path = path
        self.items: list[tuple[str, Story]] = []
        server.add(path, self._feed(), RSS)

    @property
    def url(self) -> str:
        return self.server.url(self.path)

    def link(self, guid: str) -> str:
        return self.server.url(f"/news/{guid}.html")

    def publish(self, guid: str, story: Story) -> str:
        """Add an item whose feed entry carries only the lead (the page has the text)."""
        self.server.add(f"/news/{guid}.html", article_page(story))
        self.items.append((guid, story))
        self.server.add(self.path, self._feed(), RSS)
        return self.link(guid)

    def publish_together(self, stories: dict[str, Story]) -> None:
        """Add several items at once: a poll sees all of them or none."""
        for guid, story in stories.items():
            self.server.add(f"/news/{guid}.html", article_page(story))
        self.items += stories.items()
        self.server.add(self.path, self._feed(), RSS)

    def _feed(self) -> str:
        items = "".join(
            f"<item><guid>{guid}</guid><link>{self.link(guid)}</link>"
            f"<title>{html.escape(story.title)}</title>"
            f"<description>{html.escape(story.lead)}</description>"
            f"<pubDate>{PUBLISHED}</pubDate></item>"
            for guid, story in self.items
        )
        return (
            '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
            f"<title>{SOURCE}</title><link>{self.server.base_url}/</link>{items}"
            "</channel></rss>"
        )
