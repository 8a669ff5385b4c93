"""Which personal columns a selection or cube would read, named by their place.

A role without :attr:`~strongroom.identity.permissions.Permission.PERSONAL_VIEW`
may count and cube, but not filter on, group by, aggregate or join on a personal
column: each can be turned into a question about one person's value. Joins too:
an analyst can build a dataset of guessed e-mail addresses, and a count of
customers linked to it on the e-mail column says which guesses are customers.

Run these on specifications that already compiled, so their shape is known good.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from strongroom.analysis.errors import PersonalDataRefused


def _fields(
    node: object, dataset: str, path: str, keys: Mapping[str, str]
) -> Iterator[tuple[str, str, str]]:
    """(place, dataset, field) for every field a selection's conditions test or join on."""
    if not isinstance(node, dict):
        return
    if "field" in node:
        yield path, dataset, str(node["field"])
    for kind in ("and", "or"):
        for i, child in enumerate(node.get(kind) or []):
            yield from _fields(child, dataset, f"{path}.{kind}[{i}]", keys)
    if "not" in node:
        yield from _fields(node["not"], dataset, f"{path}.not", keys)
    linked = node.get("linked")
    if isinstance(linked, dict):
        other = str(linked.get("dataset"))
        # Without "on", the compiler joins on the outer dataset's key column by name.
        default = keys.get(dataset, "")
        given = linked.get("on")
        on: dict[str, object] = given if isinstance(given, dict) else {}
        yield f"{path}.linked.on.base", dataset, str(on.get("base", default))
        yield f"{path}.linked.on.other", other, str(on.get("other", default))
        if linked.get("where") is not None:
            yield from _fields(linked["where"], other, f"{path}.linked.where", keys)


def _refuse(places: list[str]) -> None:
    if places:
        raise PersonalDataRefused(
            f"{places[0]}: the field is personal data, which your role may not select on, "
            "group by, aggregate or join on",
            hint="ask an admin, or use fields that are not personal",
        )


def check_selection(
    selection: object, base: str, personal: Mapping[str, frozenset[str]],
    keys: Mapping[str, str], path: str = "selection",
) -> None:
    """Refuse a selection that tests or joins on a personal column of any dataset it reaches.

    ``keys`` are the datasets' key columns (a linked condition without "on" joins on one).
    """
    _refuse([
        f'{place} (field "{name}")'
        for place, dataset, name in _fields(selection, base, path, keys)
        if name in personal.get(dataset, frozenset())
    ])


def check_cube(
    spec: Mapping[str, object], personal: Mapping[str, frozenset[str]], keys: Mapping[str, str]
) -> None:
    """Refuse a cube whose dimensions, measures or selection read a personal column."""
    base = str(spec["dataset"])
    secret = personal.get(base, frozenset())
    places = []
    for part in ("dimensions", "measures"):
        items = spec.get(part)
        for i, item in enumerate(items if isinstance(items, list) else []):
            if isinstance(item, dict) and item.get("field") in secret:
                places.append(f'cube.{part}[{i}] (field "{item["field"]}")')
    _refuse(places)
    if spec.get("selection") is not None:
        check_selection(spec["selection"], base, personal, keys, "selection")


MASK = "•••"


def mask_values(node: object, dataset: str, personal: Mapping[str, frozenset[str]]) -> object:
    """A copy of a selection whose values tested on personal columns read :data:`MASK`.

    For showing a saved selection to a role that may not see personal data: an admin's
    ``{"field": "email", "op": "eq", "value": "ann@example.org"}`` is a personal value.
    """
    if isinstance(node, list):
        return [mask_values(item, dataset, personal) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, object] = {}
    for key, value in node.items():
        if key == "linked" and isinstance(value, dict):
            other = str(value.get("dataset"))
            out[key] = {k: (mask_values(v, other, personal) if k == "where" else v)
                        for k, v in value.items()}
        elif key in ("and", "or", "not"):
            out[key] = mask_values(value, dataset, personal)
        else:
            out[key] = value
    if "value" in out and str(node.get("field")) in personal.get(dataset, frozenset()):
        out["value"] = MASK
    return out
