"""The words of a navigation hint, as data (like the ontology): moves, planes, structures, feature tests.

A feature test on a decision path (``feature <= threshold`` or ``>``) reads as a phrase: a property
concept by its value ("the cerebellum is in view"), a mask statistic by the side its threshold lies
on ("the head lies right of centre", or "the head does not lie left of centre" when the threshold
is on the other side of the neutral value). Edit the tables below to change what the page says.

Example:
    >>> phrase("cerebellum_visible", 0.5, True)
    'the cerebellum is in view'
    >>> phrase("head_cx", 0.2, True)
    'the head lies right of centre'
"""

from __future__ import annotations

#: what each move tells the sonographer, and the arrow the live page draws
MOVES: dict[str, dict[str, str]] = {
    "stay": {"text": "hold the probe still", "arrow": "●"},
    "along+": {"text": "slide the probe toward the fetal head", "arrow": "↑"},
    "along-": {"text": "slide the probe toward the fetal feet", "arrow": "↓"},
    "across+": {"text": "slide the probe toward the image's right side", "arrow": "→"},
    "across-": {"text": "slide the probe toward the image's left side", "arrow": "←"},
    "tilt+": {"text": "tilt the beam toward the fetal head", "arrow": "⤒"},
    "tilt-": {"text": "tilt the beam toward the fetal feet", "arrow": "⤓"},
    "rotate+": {"text": "rotate the probe, its right end toward the fetal head", "arrow": "↻"},
    "rotate-": {"text": "rotate the probe, its right end toward the fetal feet", "arrow": "↺"},
}
PLANES: dict[str, str] = {
    "trans_thalamic": "the trans-thalamic plane", "trans_ventricular": "the trans-ventricular plane",
    "trans_cerebellar": "the trans-cerebellar plane", "abdomen": "the abdominal-circumference plane",
    "femur": "the femur-length plane", "thorax": "the four-chamber plane",
}
STRUCTURES: dict[str, str] = {
    "head": "the head", "csp": "the cavum septi pellucidi", "thalamus": "the thalami", "cerebellum": "the cerebellum",
    "lateral_ventricle": "the lateral ventricle", "abdomen": "the abdomen", "stomach": "the stomach bubble",
    "umbilical_vein": "the umbilical vein", "kidney": "a kidney", "spine": "the spine", "femur": "the femur",
    "heart": "the heart", "falx": "the midline echo",
}
#: structures named in the plural: their verbs agree
PLURAL: frozenset[str] = frozenset({"the thalami"})
_AGREE = ((" is ", " are "), (" does not ", " do not "), (" lies ", " lie "), (" looks ", " look "),
          (" reaches ", " reach "), (" keeps ", " keep "), (" ends ", " end "))
#: binary property concepts: (phrase when true, phrase when false); {s} is the structure
PROPERTIES: dict[str, tuple[str, str]] = {
    "visible": ("{s} is in view", "{s} is not in view"),
    "head_complete": ("the whole skull is inside the image", "the skull is cut off by the image edge"),
    "head_magnified": ("the head fills the image", "the head looks small"),
    "head_symmetric": ("the midline splits the head evenly", "the midline is off-centre (an oblique plane)"),
    "abdomen_round": ("the abdomen is round", "the abdomen looks oval (an oblique plane)"),
    "abdomen_magnified": ("the abdomen fills the image", "the abdomen looks small"),
    "femur_ends_visible": ("both femur ends are inside the image", "a femur end is cut off"),
    "femur_horizontal": ("the femur lies flat", "the femur is steep"),
    "femur_magnified": ("the femur spans the image", "the femur looks short"),
    "heart_magnified": ("the heart fills the image", "the heart looks small"),
}
#: mask statistics: (phrase above the neutral value, phrase below it) and the neutral value
STATS: dict[str, tuple[str, str, float]] = {
    "area": ("{s} looks large", "{s} looks small", 0.15),
    "cx": ("{s} lies right of centre", "{s} lies left of centre", 0.0),
    "cy": ("{s} lies deep", "{s} lies shallow", 0.55),
    "left": ("{s} keeps clear of the left edge", "{s} reaches the left edge", -0.6),
    "right": ("{s} reaches the right edge", "{s} keeps clear of the right edge", 0.6),
    "bottom": ("{s} reaches the bottom", "{s} keeps clear of the bottom", 0.85),
    "ratio": ("{s} is round", "{s} is elongated", 0.8),
    "dx": ("{s} lies right of the middle", "{s} lies left of the middle", 0.0),
    "dy": ("{s} lies in the far half", "{s} lies in the near half", 0.0),
}
EXTRA: dict[str, tuple[str, str, float]] = {
    "falx_shift": ("the midline echo is shifted toward the far side", "the midline echo is shifted toward the near side", 0.0),
    "falx_turn": ("the midline echo turns clockwise from the head's axis",
                  "the midline echo turns anticlockwise from the head's axis", 0.0),
    "femur_angle": ("the femur slopes down to the right", "the femur slopes down to the left", 0.0),
}
#: changes since the frame before the last move (``d_*`` features): (rose, fell), by statistic
DELTAS: dict[str, tuple[str, str]] = {
    "visible": ("{s} came into view", "{s} left the view"),
    "area": ("{s} grew", "{s} shrank"), "cx": ("{s} moved right", "{s} moved left"),
    "cy": ("{s} moved deeper", "{s} moved up"), "left": ("{s}'s left end moved right", "{s}'s left end moved left"),
    "right": ("{s}'s right end moved right", "{s}'s right end moved left"),
    "bottom": ("{s} reaches deeper", "{s} ends higher"), "ratio": ("{s} became rounder", "{s} became more elongated"),
    "dx": ("{s} moved right", "{s} moved left"), "dy": ("{s} moved deeper", "{s} moved up"),
    "falx_shift": ("the midline echo moved toward the far side", "the midline echo moved toward the near side"),
    "falx_turn": ("the midline echo turned clockwise", "the midline echo turned anticlockwise"),
    "femur_angle": ("the femur turned clockwise", "the femur turned anticlockwise"),
}
AFTER_LAST = "after the last move"
TEMPLATE = "{evidence}: {move} to reach {plane}."
STAY_TEMPLATE = "{evidence}: {move}, this is {plane}."
NO_EVIDENCE = "nothing in view tells more"


def _stat(feature: str) -> tuple[str, tuple[str, str, float]]:
    if feature in EXTRA:
        return "", EXTRA[feature]
    structure, _, kind = feature.rpartition("_")
    if kind not in STATS:
        raise KeyError(f"no wording for navigation feature {feature!r}")
    return STRUCTURES.get(structure, structure.replace("_", " ")), STATS[kind]


def _delta(feature: str, threshold: float, above: bool) -> str:
    """Words for a change since the last move; "" when the test only says what did not change."""
    if (above and threshold < 0) or (not above and threshold > 0):
        return ""
    if feature.endswith("_visible"):
        s, kind = STRUCTURES.get(feature[: -len("_visible")], feature), "visible"
    elif feature in PROPERTIES:
        yes, no = PROPERTIES[feature]
        return f"{yes if above else no} {AFTER_LAST}"
    elif feature in DELTAS:
        s, kind = "", feature
    else:
        structure, _, kind = feature.rpartition("_")
        s = STRUCTURES.get(structure, structure.replace("_", " "))
    rose, fell = DELTAS[kind]
    return f"{(rose if above else fell).format(s=s)} {AFTER_LAST}"


def _agree(text: str) -> str:
    for subject in PLURAL:
        if text.startswith(subject + " "):
            rest = text[len(subject):] + " "
            for one, many in _AGREE:
                if rest.startswith(one):
                    return (subject + many + rest[len(one):]).rstrip()
    return text


def phrase(feature: str, threshold: float, above: bool) -> str:
    """The words (verbs agreeing with a plural structure) for a frame whose ``feature`` is above (``above``) or at most ``threshold``; "" for a
    test that says nothing worth saying (a move that was not the last one, a change that did not happen)."""
    return _agree(_phrase(feature, threshold, above))


def _phrase(feature: str, threshold: float, above: bool) -> str:
    if feature.startswith("last_"):
        return f"after the last move ({MOVES[feature[5:]]['text']})" if above else ""
    if feature.startswith("d_"):
        return _delta(feature[2:], threshold, above)
    if feature.endswith("_visible"):
        s = STRUCTURES.get(feature[: -len("_visible")], feature)
        yes, no = PROPERTIES["visible"]
        return (yes if above else no).format(s=s)
    if feature in PROPERTIES:
        yes, no = PROPERTIES[feature]
        return yes if above else no
    s, (high, low, neutral) = _stat(feature)
    if above:
        text = high if threshold >= neutral else "not " + low
    else:
        text = low if threshold <= neutral else "not " + high
    if text.startswith("not "):  # "not {s} lies left" -> "{s} does not lie left"
        body = text[4:].format(s=s)
        for verb, neg in ((" lies ", " does not lie "), (" looks ", " does not look "), (" is ", " is not "),
                          (" reaches ", " does not reach "), (" keeps ", " does not keep "), (" turns ", " does not turn "),
                          (" slopes ", " does not slope ")):
            if verb in body:
                return body.replace(verb, neg, 1)
        return "not " + body
    return text.format(s=s)
