"""A story told over days, for the digest and timeline tests: an eruption near Grindavik
reported as it developed (one report undated, one a copy of a dispatch from a second
source), and unrelated news of the same weeks. JSON records for bot_harness.make_data_dir."""

from __future__ import annotations

from typing import Any

SWARM = "Hundreds of small earthquakes shook the Reykjanes peninsula"
ERUPTION = "A volcanic eruption began on Tuesday night on the Reykjanes peninsula"
LAVA = "Lava from the eruption near Grindavik reached the earth walls"
ENDED = "The eruption near Grindavik has ended"
RETURN = "Residents of Grindavik were allowed back into the town"


def _record(slug: str, title: str, date: str | None, text: str, **extra: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "title": title,
        "text": text,
        "source": extra.pop("source", "Nordic Wire"),
        "url": f"https://news.example/{slug}",
        "lang": extra.pop("lang", "en"),
    }
    if date is not None:
        record["date"] = date
    return {**record, **extra}


ICELAND = [
    _record(
        "iceland-lava",
        "Lava reaches the walls protecting Grindavik",
        "2024-07-12",
        f"{LAVA} built to protect the fishing town on Thursday, Iceland's civil protection "
        "agency said. Bulldozers worked through the night to raise the barriers further.\n\n"
        "Two houses on the northern edge of the town caught fire. Nobody was hurt, as the "
        "town had been evacuated before the eruption began.",
    ),
    _record(
        "iceland-eruption",
        "Volcano erupts near Grindavik in Iceland",
        "2024-07-09",
        f"{ERUPTION} in south-west Iceland, the country's meteorological office said. Lava "
        "fountains up to fifty metres high poured out of a three-kilometre fissure north of "
        "the fishing town of Grindavik.\n\n"
        "The town had been evacuated hours earlier. Flights at Keflavik airport were not "
        "affected.",
    ),
    _record(
        "iceland-ended",
        "Eruption near Grindavik is over, scientists say",
        "2024-07-20",
        f"{ENDED}, Icelandic scientists said on Saturday, eleven days after lava first broke "
        "through the ground on the Reykjanes peninsula.\n\n"
        "Gas pollution may still reach the capital Reykjavik when the wind turns, the "
        "meteorological office warned.",
    ),
    _record(
        "iceland-swarm",
        "Earthquake swarm shakes Iceland's Reykjanes peninsula",
        "2024-07-02",
        f"{SWARM} in south-west Iceland overnight, and volcanologists warned that magma was "
        "gathering under the ground near Grindavik.\n\n"
        "The civil protection agency raised its alert level and asked residents of the town "
        "to prepare for an evacuation.",
    ),
    _record(
        "iceland-return",
        "Grindavik residents return home after the eruption",
        None,
        f"{RETURN} after the volcanic eruption on the Reykjanes peninsula, the police said. "
        "Many found their streets cracked and their gardens covered in ash.\n\n"
        "The fishing harbour will reopen next month.",
    ),
]
# The eruption's dispatch as a second site ran it: the same text, so the same story.
ERUPTION_COPY = _record(
    "copy-eruption",
    "Volcano erupts near Grindavik in Iceland",
    "2024-07-09",
    ICELAND[1]["text"],
    source="Atlantic Daily",
)
OTHER_NEWS = [
    _record(
        "chess",
        "Norwegian wins rapid chess title in Samarkand",
        "2024-07-11",
        "A Norwegian grandmaster won the world rapid chess championship in Samarkand on "
        "Friday after a tense final round against his Indian rival. The tournament drew two "
        "hundred players from sixty countries to the Uzbek city.",
    ),
    # Unrelated, French, inside the timelines' dates. Any French text comes close to the
    # answer floor (0.43) for a short French topic ("l'éruption en Islande"): this one's
    # evidence is 0.421-0.423 on int8 and fp32. An earlier text sat at 0.427-0.430, on the
    # floor within int8's rounding, and was listed or not by the export's rounding alone.
    _record(
        "baguette",
        "Le prix de la baguette augmente à Lyon",
        "2024-07-15",
        "Les boulangers de Lyon vendent depuis lundi la baguette dix centimes plus cher, à "
        "cause du prix de la farine. La tradition coûte désormais un euro quarante dans la "
        "plupart des boulangeries.",
        lang="fr",
        source="Presse Lyon",
    ),
]
