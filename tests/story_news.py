"""News for the follow-up and corroboration tests, written for them: one story told by
two outlets running the same dispatch and by a French paper in its own words, and
another story of the same day that answers the same short questions differently."""

from __future__ import annotations

FERRY_TEXT = (
    "A ferry arriving from Corsica crashed into a quay in Marseille harbour on Wednesday "
    "morning, the port authority said. The ship, carrying 600 passengers, had lost power "
    "in its engines during the manoeuvre.\n\n"
    "Four passengers suffered injuries and were taken to the Timone hospital. The captain "
    "was questioned by the maritime police.\n\n"
    "The company said the ferry would stay in dry dock for two weeks."
)
FERRY = {
    "title": "Ferry crashes into quay in Marseille harbour",
    "text": FERRY_TEXT,
    "source": "Coast Wire",
    "date": "2024-07-10",
    "url": "https://coast.example/ferry-marseille",
    "lang": "en",
}
FERRY_COPY = {  # the same dispatch, run by another outlet with a line of its own
    "title": "Marseille: ferry hits the quay",
    "text": FERRY_TEXT + " Crossings to Ajaccio were delayed by an hour.",
    "source": "Harbour Daily",
    "date": "2024-07-10",
    "url": "https://harbour.example/2024/07/10/ferry",
    "lang": "en",
}
FERRY_FR = {
    "title": "Un ferry percute un quai du port de Marseille",
    "text": (
        "Un ferry en provenance de Corse a percuté un quai du port de Marseille mercredi "
        "matin, a indiqué l'autorité portuaire. Le navire, qui transportait 600 passagers, "
        "avait perdu la puissance de ses moteurs pendant la manœuvre.\n\n"
        "Quatre passagers ont été blessés et transportés à l'hôpital de la Timone. Le "
        "capitaine a été entendu par la police maritime.\n\n"
        "La compagnie a indiqué que le ferry resterait en cale sèche pendant deux semaines."
    ),
    "source": "Le Courrier du Port",
    "date": "2024-07-11",
    "url": "https://courrier.example/ferry-marseille",
    "lang": "fr",
}
TRAIN = {
    "title": "Regional train derails near Lyon",
    "text": (
        "A regional train derailed near Lyon on Wednesday after a landslide covered the "
        "track, the rail operator said. Two carriages left the rails in a cutting south of "
        "the city.\n\n"
        "Twelve people were hurt in the derailment, three of them seriously. Trains between "
        "Lyon and Grenoble are cancelled until Friday."
    ),
    "source": "Rail News",
    "date": "2024-07-10",
    "url": "https://rail.example/derailment-lyon",
    "lang": "en",
}
STORIES = (FERRY, FERRY_COPY, FERRY_FR, TRAIN)

FERRY_QUESTION = "Why did the ferry crash into the quay in Marseille?"
HURT_QUESTION = "How many people were hurt?"
FERRY_HURT = "Four passengers suffered injuries"
FERRY_HURT_FR = "Quatre passagers ont été blessés"
TRAIN_HURT = "Twelve people were hurt"
