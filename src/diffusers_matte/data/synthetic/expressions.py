# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""Referring expressions of the four RefMatte kinds for a scene's instances, each naming exactly one of them; the
expressions of the same kinds that name none of them (:func:`absent_expressions`); and the paraphrases a person
would use."""

from __future__ import annotations

import itertools
import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .shapes import CATEGORIES, COLORS, H_WORDS, SOLID_SHAPES, V_WORDS, Instance


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


# "the ball to the left of the box" names nothing when every ball is clearly on the box's other side.
_OPPOSITE = {
    "to the left of": "to the right of",
    "to the right of": "to the left of",
    "above": "below",
    "below": "above",
}


# An instance with less than this share of its alpha in the part of the image a position names is not there.
ABSENT_MAX_SHARE = 0.05


def _reach(cell: Tuple[int, int]) -> List[Tuple[int, int]]:
    """The cells an absolute phrase can be read as naming: its own for a corner or the centre; the whole row for "at
    the top/bottom" and the whole column for "on the left/right side", which a person also says of an object in a
    corner."""
    h, v = cell
    if h == 1 and v != 1:
        return [(column, v) for column in range(3)]
    if v == 1 and h != 1:
        return [(h, row) for row in range(3)]
    return [cell]


def _is_clear_of(inst: Instance, cell: Tuple[int, int], size: int) -> bool:
    """Neither ``inst``'s centroid nor more than `ABSENT_MAX_SHARE` of its alpha lies where ``cell``'s phrase names."""
    cells = _reach(cell)
    if inst.cell in cells:
        return False
    (h0, v0), (h1, v1) = cells[0], cells[-1]
    rows = slice(round(v0 * size / 3), round((v1 + 1) * size / 3))
    columns = slice(round(h0 * size / 3), round((h1 + 1) * size / 3))
    return float(inst.alpha[rows, columns].sum()) < ABSENT_MAX_SHARE * float(inst.alpha.sum())


def _absent_keyword(instances: List[Instance], rng: np.random.Generator) -> str:
    present = {inst.category for inst in instances}
    absent = [c for c in CATEGORIES if c not in present]
    return _noun_phrase({"category": str(rng.choice(absent))})


def _absent_basic(instances: List[Instance], rng: np.random.Generator) -> str:
    """A category the image holds, in a colour none of its instances of that category has, worded like the basic
    expressions of :func:`describe` (size and material of a real instance, so the wording does not give it away)."""
    model = instances[int(rng.integers(len(instances)))]
    taken = {inst.color for inst in instances if inst.category == model.category}
    desc = {"category": model.category, "color": str(rng.choice([c for c in COLORS if c not in taken]))}
    for extra in ("size", "material"):
        desc[extra] = model.attribute(extra)
    if model.blurry:
        desc["blurry"] = True
    return _basic_expression(desc, rng)


def _absent_absolute(instances: List[Instance], size: int, rng: np.random.Generator) -> Optional[str]:
    """A category the image holds, at a position none of its instances reaches (see :func:`_reach`)."""
    category = instances[int(rng.integers(len(instances)))].category
    same = [inst for inst in instances if inst.category == category]
    cells = [(h, v) for v in range(3) for h in range(3)]
    clear = [cell for cell in cells if all(_is_clear_of(inst, cell, size) for inst in same)]
    if not clear:
        return None
    cell = clear[int(rng.integers(len(clear)))]
    return f"the {_noun_phrase({'category': category})} {_absolute_phrase(cell)}"


def _absent_relative(instances: List[Instance], size: int, rng: np.random.Generator) -> Optional[str]:
    """A category the image holds, on the side of a reference instance where none of its instances is (each one
    clearly on the opposite side)."""
    order = {id(inst): k for k, inst in enumerate(instances)}
    categories = sorted({inst.category for inst in instances})
    for ref_index in rng.permutation(len(instances)):
        ref = instances[int(ref_index)]
        ref_desc = _minimal_description(ref, instances)
        if ref_desc is None:
            continue
        for category in rng.permutation(categories):
            head = _noun_phrase({"category": str(category)})
            same = [inst for inst in instances if inst.category == category and inst is not ref]
            if not same or head == _noun_phrase(ref_desc):
                continue
            relations = [
                relation
                for relation, opposite in _OPPOSITE.items()
                if all(opposite in _relations(inst, ref, size, order) for inst in same)
            ]
            if relations:
                return f"the {head} {relations[int(rng.integers(len(relations)))]} the {_noun_phrase(ref_desc)}"
    return None


def absent_expressions(instances: List[Instance], size: int, rng: np.random.Generator) -> List[Tuple[str, str]]:
    """Expressions that name no instance of a scene described by :func:`describe`, as ``(text, kind)`` pairs in
    the order of ``TEXT_TYPES``, one per kind the scene allows:

    * ``keyword``: a category the image does not hold ("star");
    * ``basic``: a category it holds in a colour none of those instances has ("the large purple solid ball");
    * ``absolute``: a category it holds at a position none of those instances reaches ("the ball in the top left
      corner of the image"); left out when every position is taken;
    * ``relative``: a category it holds on the side of another instance where none of those instances is ("the
      ball to the left of the red box"); left out when no pair of the scene allows it.
    """
    pairs = [(_absent_keyword(instances, rng), "keyword"), (_absent_basic(instances, rng), "basic")]
    for text, kind in (
        (_absent_absolute(instances, size, rng), "absolute"),
        (_absent_relative(instances, size, rng), "relative"),
    ):
        if text is not None:
            pairs.append((text, kind))
    return pairs


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
