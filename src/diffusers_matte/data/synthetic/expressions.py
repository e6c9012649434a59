# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""Referring expressions of the four RefMatte kinds for a scene's instances, each naming exactly one of them, and
the paraphrases a person would use."""

from __future__ import annotations

import itertools
import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .shapes import H_WORDS, SOLID_SHAPES, V_WORDS, Instance


def _cell(inst: Instance, size: int) -> Tuple[int, int]:
    cx, cy = _centroid(inst)
    return min(int(3 * cx / size), 2), min(int(3 * cy / size), 2)


def _centroid(inst: Instance) -> Tuple[float, float]:
    if inst.centroid is None:
        ys, xs = np.nonzero(inst.alpha > 0.05)
        if len(xs) == 0:
            return inst.center
        w = inst.alpha[ys, xs]
        inst.centroid = (
            float((xs * w).sum() / w.sum()),
            float((ys * w).sum() / w.sum()),
        )
    return inst.centroid


def _absolute_phrase(cell: Tuple[int, int]) -> str:
    h, v = cell
    if (h, v) == (1, 1):
        return "in the center of the image"
    if h == 1:
        return f"at the {V_WORDS[v]} of the image"
    if v == 1:
        return f"on the {H_WORDS[h]} side of the image"
    return f"in the {V_WORDS[v]} {H_WORDS[h]} corner of the image"


# tried in this order, fewest first; positions come last so they are used only for twins that look the same
ATTRIBUTE_ORDER = ("color", "size", "material", "blurry", "hpos", "vpos")


def _matches(inst: Instance, desc: Dict[str, Any]) -> bool:
    return all(inst.attribute(k) == v for k, v in desc.items())


def _noun_phrase(desc: Dict[str, Any]) -> str:
    # the centre column reads "center" and the middle row "middle": "the middle ball" names one row only
    words = [desc[k] for k in ("vpos", "hpos") if k in desc]
    if desc.get("size"):
        words.append(desc["size"])
    if desc.get("blurry"):
        words.append("blurry")
    if "color" in desc:
        words.append(desc["color"])
    if desc.get("material") in ("transparent",) and desc["category"] in SOLID_SHAPES:
        words.append("transparent")
    elif desc.get("material") == "solid":
        words.append("solid")
    words.append(desc["category"])
    return " ".join(words)


def _minimal_description(
    target: Instance,
    pool: List[Instance],
    required: Sequence[str] = (),
    test=lambda inst: True,
) -> Optional[Dict[str, Any]]:
    """Fewest attributes (beyond category and ``required``) such that only ``target`` matches and passes ``test``."""
    optional = [a for a in ATTRIBUTE_ORDER if a not in required]
    for count in range(len(optional) + 1):
        for extra in itertools.combinations(optional, count):
            desc = {"category": target.category}
            desc.update({a: target.attribute(a) for a in (*required, *extra)})
            if "blurry" in desc and not desc["blurry"]:
                continue  # "not blurry" is not something we say
            hits = [inst for inst in pool if _matches(inst, desc) and test(inst)]
            if hits == [target]:
                return desc
    return None


def _relations(a: Instance, b: Instance, size: int, order: Dict[int, int]) -> List[str]:
    """Relations that hold from ``a`` to ``b``: spatial (clear margins) and depth (only where they overlap)."""
    key = (id(a), id(b), "relations")
    if key not in order:
        order[key] = _compute_relations(a, b, size, order)
    return order[key]


def _compute_relations(a: Instance, b: Instance, size: int, order: Dict[Any, Any]) -> List[str]:
    (ax, ay), (bx, by) = _centroid(a), _centroid(b)
    margin = 0.12 * size
    out = []
    if ax < bx - margin:
        out.append("to the left of")
    if ax > bx + margin:
        out.append("to the right of")
    if ay < by - margin:
        out.append("above")
    if ay > by + margin:
        out.append("below")
    overlap = float(np.minimum(a.coverage, b.coverage).sum())
    if overlap > 20:
        out.append("in front of" if order[id(a)] > order[id(b)] else "behind")
    return out


def describe(instances: List[Instance], size: int, rng: np.random.Generator) -> bool:
    """Writes four unique expressions per instance; returns False when some instance cannot be disambiguated."""
    order = {id(inst): k for k, inst in enumerate(instances)}
    for inst in instances:
        inst.cell = _cell(inst, size)
    for target in instances:
        others = [i for i in instances if i is not target]
        keyword = _minimal_description(target, instances)
        basic = _minimal_description(target, instances, required=("color",))
        if basic is not None and len(basic) < 4:  # richer basic expressions, like RefMatte's
            for extra in ("size", "material"):
                basic.setdefault(extra, target.attribute(extra))
        if basic is not None and target.blurry:
            basic["blurry"] = True
        cell = _cell(target, size)
        absolute = _minimal_description(target, instances, test=lambda inst: _cell(inst, size) == cell)
        relative_text = None
        for ref in rng.permutation(len(others)) if others else []:
            ref_inst = others[int(ref)]
            ref_desc = _minimal_description(ref_inst, instances)
            relations = _relations(target, ref_inst, size, order)
            if ref_desc is None or not relations:
                continue
            relation = relations[int(rng.integers(len(relations)))]
            desc = _minimal_description(
                target,
                others + [target],
                test=lambda inst: inst is not ref_inst and relation in _relations(inst, ref_inst, size, order),
            )
            # "the center box left of the center box" is true but unreadable: try another reference
            if desc is not None and _noun_phrase(desc) != _noun_phrase(ref_desc):
                relative_text = f"the {_noun_phrase(desc)} {relation} the {_noun_phrase(ref_desc)}"
                break
        if keyword is None or basic is None or absolute is None or relative_text is None:
            return False
        target.texts = [
            _noun_phrase(keyword),
            _basic_expression(basic, rng),
            f"the {_noun_phrase(absolute)} {_absolute_phrase(cell)}",
            relative_text,
        ]
    return True


def _basic_expression(desc: Dict[str, Any], rng: np.random.Generator) -> str:
    """An attribute expression in one of three forms: "the red ball", "a red ball", "the ball which is red"."""
    form = int(rng.integers(3))
    if form < 2:
        phrase = _noun_phrase(desc)
        article = "the" if form == 0 else ("an" if phrase[0] in "aeiou" else "a")
        return f"{article} {phrase}"
    position = {k: desc[k] for k in ("vpos", "hpos") if k in desc}
    rest = {k: v for k, v in desc.items() if k not in position}
    words = _noun_phrase(rest).split()[:-1]
    head = _noun_phrase({"category": desc["category"], **position})
    if not words:
        return f"the {head}"
    attrs = words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]
    return f"the {head} which is {attrs}"


# Wordings a person uses for what the generator says, tried on each expression (each applies with probability
# 1/2). They keep the meaning, so an expression stays unique to its instance.
PARAPHRASES: Tuple[Tuple[str, Tuple[str, ...]], ...] = (
    (r"\bball\b", ("sphere",)),
    (r"\bbox\b", ("cube",)),
    (r"\bring\b", ("hoop",)),
    (r"\bglass\b", ("vase",)),
    (r"\bnet\b", ("mesh",)),
    (r"\bsmoke\b", ("mist",)),
    (r"\bgray\b", ("grey",)),
    (r"\blarge\b", ("big",)),
    (r"\bsmall\b", ("little",)),
    (r"\bblurry\b", ("blurred",)),
    (r"\btransparent\b", ("see-through", "clear")),
    (
        r"^the (top|bottom)\b",
        None,
    ),  # prenominal rows: "the top ball" -> "the upper ball"
    (r"\b(top|bottom) (left|right|center)\b", None),
    (r"\bcorner of the image\b", ("corner",)),
    (r"\bof the image\b", ("of the picture", "of the photo")),
    (r"\bto the (left|right) of\b", None),  # "left of"
    (r"\babove\b", ("over",)),
    (r"\bbelow\b", ("under", "beneath")),
)


_ROWS = {"top": "upper", "bottom": "lower"}


def paraphrase(text: str, rng: np.random.Generator) -> str:
    """``text`` with some of :data:`PARAPHRASES` applied; "top"/"bottom" in front of a noun become "upper"/"lower"."""
    for pattern, alternatives in PARAPHRASES:
        match = re.search(pattern, text)
        if match is None or rng.random() < 0.5:
            continue
        if alternatives is not None:
            new = str(rng.choice(alternatives))
        elif match.group(0).startswith("to the"):
            new = f"{match.group(1)} of"
        else:
            new = match.group(0).replace(match.group(1), _ROWS[match.group(1)])
        text = text[: match.start()] + new + text[match.end() :]
    return text
