"""Labels under the two protocols: CDE (the composite's 3 classes) and SDE (each database's own).

Mappings are the published ones (MEGC 2019 composite; EPIR paper's SDE class sets); an emotion
missing from a mapping is excluded under that protocol (None).
"""

from __future__ import annotations

CDE_CLASSES = ("negative", "positive", "surprise")

# positive = happiness; negative = CASME II disgust + repression, SAMM anger + contempt + disgust +
# fear + sadness, SMIC "ne"; surprise; dropped: every "others", CASME II fear and sadness.
# CAS(ME)^3 is not in the composite: its 3-class mapping (= its SDE) is used for CDE too.
_CDE = {
    "casme2": {"happiness": "positive", "disgust": "negative", "repression": "negative", "surprise": "surprise"},
    "samm": {"happiness": "positive", "anger": "negative", "contempt": "negative", "disgust": "negative",
             "fear": "negative", "sadness": "negative", "surprise": "surprise"},
    "smic": {"positive": "positive", "negative": "negative", "surprise": "surprise"},
    "casme3": {"happy": "positive", "anger": "negative", "disgust": "negative", "fear": "negative",
               "sad": "negative", "surprise": "surprise"},
}

SDE_CLASSES = {
    "casme2": ("happiness", "disgust", "surprise", "repression", "others"),
    "samm": ("happiness", "anger", "surprise", "contempt", "others"),
    "smic": CDE_CLASSES,
    "casme3": CDE_CLASSES,
}

# Sheet spellings that name an SDE class differently (SAMM writes "Other").
_SDE_ALIASES = {"other": "others"}


def cde_label(dataset: str, emotion: str) -> str | None:
    return _CDE[dataset].get(emotion.strip().lower())


def sde_label(dataset: str, emotion: str) -> str | None:
    emotion = emotion.strip().lower()
    if dataset in ("smic", "casme3"):
        return cde_label(dataset, emotion)
    emotion = _SDE_ALIASES.get(emotion, emotion)
    return emotion if emotion in SDE_CLASSES[dataset] else None
