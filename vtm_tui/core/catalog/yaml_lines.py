"""YAML with line numbers: the catalog parsed into plain data while every key and list item
gets its line, so that any later problem can point at it. YAML syntax errors become problems
too; a duplicate key is one (PyYAML alone would keep the last value silently).

Anchors, aliases and merge keys (`<<: *defaults`, `<<: [*a, *b]`; yaml.org/type/merge.html)
resolve exactly as yaml.safe_load resolves them, because PyYAML's own merge does it: the
mapping's own keys win over merged ones, and among several merged mappings PyYAML's order holds.
A merged key keeps the line where it is written (in the anchored mapping), so an error inside
merged content points there."""
from __future__ import annotations

from typing import Any

import yaml

from vtm_tui.core.catalog.problems import Loc, Problems

MERGE_TAG = "tag:yaml.org,2002:merge"  # the tag PyYAML's resolver gives a plain `<<` key


def compose(text: str, problems: Problems) -> Any:
    """Parse YAML into plain data, recording the line of every key and item in problems.lines."""
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None
        return _node_to_data(root, (), loader, problems, active=set())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        # A problem found at the end of the stream sits past the last line; point at that line.
        line = min(mark.line + 1, max(len(text.splitlines()), 1)) if mark else None
        message = exc.problem or exc.context
        if exc.context and exc.problem and exc.context_mark:
            message = f"{exc.context} at line {exc.context_mark.line + 1}: {exc.problem}"
        problems.add_at(line, (), f"invalid YAML: {message}")
    except yaml.YAMLError as exc:
        problems.add_at(None, (), f"invalid YAML: {exc}")
    finally:
        loader.dispose()
    return None


def _node_to_data(node: yaml.Node, loc: Loc, loader: yaml.SafeLoader, problems: Problems,
                  active: set[int]) -> Any:
    problems.lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_object(node, deep=True)
    if id(node) in active:
        problems.add(loc, "recursive YAML alias")
        return None
    active.add(id(node))
    try:
        if isinstance(node, yaml.SequenceNode):
            items = []
            for index, item in enumerate(node.value):
                problems.lines[loc + (index,)] = item.start_mark.line + 1
                items.append(_node_to_data(item, loc + (index,), loader, problems, active))
            return items
        mapping: dict[str, Any] = {}
        first_line: dict[str, int] = {}
        for key_node, value_node in _flattened(node, loader):
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                problems.add_at(line, loc, "a key must be plain text")
                continue
            # All keys of the format are names, so take them as written (`on:` stays "on").
            key = key_node.value
            if key in first_line and id(key_node) in node.vtm_own_keys:  # merged keys give way, as in safe_load
                problems.add_at(line, loc + (key,),
                                f"duplicate key '{key}' (first at line {first_line[key]})")
                continue
            if id(key_node) in node.vtm_own_keys:
                first_line[key] = line
            problems.lines[loc + (key,)] = line
            mapping[key] = _node_to_data(value_node, loc + (key,), loader, problems, active)
        return mapping
    finally:
        active.discard(id(node))




def _flattened(node: yaml.MappingNode, loader: yaml.SafeLoader) -> list[tuple[yaml.Node, yaml.Node]]:
    """The mapping's (key, value) pairs after PyYAML's own merge (SafeConstructor.flatten_mapping,
    what yaml.safe_load does): `<<` pairs replaced by the merged mappings' pairs, placed first,
    so that later pairs win. The node remembers which keys were its own (vtm_own_keys): two of
    those with one name are a duplicate; a merged key that the mapping overrides is not. A node
    reached again through an alias is flattened already and keeps what it remembered."""
    if not hasattr(node, "vtm_own_keys"):
        node.vtm_own_keys = {id(key) for key, _ in node.value if key.tag != MERGE_TAG}
        try:
            loader.flatten_mapping(node)
        except RecursionError:
            raise yaml.constructor.ConstructorError(None, None, "a merge key (<<) that merges itself",
                                                    node.start_mark) from None
    return node.value
