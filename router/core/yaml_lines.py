"""Where a field of a YAML file is written: `line_of("config.yaml", "models[2].cost")` is the
line of that key, so a configuration error can say where to look. Pure, except that it reads
the file it is given; it never raises.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

# A dotted field path's parts: `models[2].cost` → models, [2], cost; `models[gpt-4o].stand_in`
# names a list item by its `name`.
_PART = re.compile(r"\[([^\]]*)\]|([^.\[\]]+)")


def line_of(file: str | Path, field: str) -> int | None:
    """The 1-based line where `field` is written in the YAML file `file`.

    Where the path goes deeper than the file does (a field left out, which the error is
    about), the line of the deepest part that is written: the section the field belongs in.
    None when the file cannot be read or parsed, or its first part is not in it."""
    if not field:
        return None
    try:
        node = yaml.compose(Path(file).read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError):
        return None
    line = None
    for index, key in _PART.findall(field):
        found = _child(node, key, index)
        if found is None:
            break
        line, node = found
    return line


def _child(node: yaml.Node | None, key: str, index: str) -> tuple[int, yaml.Node] | None:
    """(the line where `node`'s part is written, its value node), or None."""
    if isinstance(node, yaml.MappingNode) and key:
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == key:
                return k.start_mark.line + 1, v
        for k, v in node.value:  # keys a `<<:` merge brings in
            if isinstance(k, yaml.ScalarNode) and k.tag == "tag:yaml.org,2002:merge":
                for merged in v.value if isinstance(v, yaml.SequenceNode) else [v]:
                    found = _child(merged, key, index)
                    if found is not None:
                        return found
        return None
    if isinstance(node, yaml.SequenceNode) and index:
        if index.isdigit():
            i = int(index)
            item = node.value[i] if i < len(node.value) else None
        else:  # a list item named by its `name:`
            item = next((n for n in node.value if _named(n, index)), None)
        return (item.start_mark.line + 1, item) if item is not None else None
    return None


def _named(node: yaml.Node, name: str) -> bool:
    return isinstance(node, yaml.MappingNode) and any(
        isinstance(k, yaml.ScalarNode)
        and k.value == "name"
        and isinstance(v, yaml.ScalarNode)
        and v.value == name
        for k, v in node.value
    )
