"""Expressions parsed once, and the service of a request found without listing moto's files.

For every UpdateItem moto parses the ``UpdateExpression`` twice (once to find the
placeholders it uses, once to apply it) and the ``ConditionExpression`` twice, and for every
request it lists moto's package directory to find which service the request is for. On
this 2-core machine that was most of an UpdateItem's time in the emulator, which serves one
request at a time.

- An update expression's syntax tree depends on the text only, and moto never changes the
  tree it parses (its validator works on a deep copy): the tree is kept per text, with the
  placeholders found in it. moto's first three checks of a tree (how many clauses of each
  kind, overlapping paths, no key attribute updated) depend on the tree, the table's keys and
  of the names only on which placeholders name the same attribute and which name a key
  (``names_shape``), and change nothing: once passed, they are not run again for the same.
- A condition's parse depends on the text, the names and the values; the parse of the same
  three is kept for the next few requests (the second parse of a request finds the first).
  moto's operators (``Op``) are evaluated against an item; the values they hold are a
  private copy, made when the parse is kept.
- The validator's copy of a tree is made from the tree's pickle (made once), not by
  ``copy.deepcopy``, which walks it object by object.
- The list of moto's service modules, and each handler class's method names, are read once.
- moto's validators walk the tree once each (seven walks a request), asking of every node
  ``isinstance(node, Node)`` (an ABC: slow) and rebuilding the tuple of node classes they
  process: the answers depend on the node's class and the validator's class only, and are
  kept per pair.
- A plain UpdateItem (``SET #a = :v, ...`` and ``REMOVE #b, ...`` of top-level attributes, no
  index key set) is applied as moto's executor would apply it, without the parse, the seven
  walks and the executor (``simple_update_item``); anything else is moto's own.

Nothing here may change an answer: ``tests/integration/test_emulator.py`` runs the same
writes, conditions and errors with and without it (``enabled``), and compares the answers,
the items and the stream records. The caches are plain dicts: the embedded emulator
serves one request at a time; the integration tests' in-process moto may reach them from a
few threads at once, which the interpreter lock keeps whole (each step reads or writes one
entry, and a miss only parses again).
"""
from __future__ import annotations

import copy
import json
import pickle
import re
from collections import OrderedDict
from typing import Any

_applied = False
#: off: moto parses every time (the comparison test turns it off and on)
enabled = True
UPDATE_TREES = 1024
CONDITIONS = 64


def names_shape(text: str, names: dict[str, str] | None, key_attrs: list[str]) -> tuple:
    """What the static checks (clause counts, overlapping paths, no key attribute updated) see
    of the names: which placeholders name the same attribute, which name a key attribute, and
    which name an attribute the expression also names literally (``SET foo = :v, #n = :w`` with
    ``#n`` = ``foo`` overlaps). A name that differs per request (a webhook's
    ``d_<delivery id>``) then finds the tree's earlier pass."""
    literal = set(LITERAL_NAME.findall(text))
    classes: dict[str, int] = {}
    shape = []
    for placeholder in sorted(names or {}):
        name = names[placeholder]  # type: ignore[index]
        if name in key_attrs or name in literal:
            shape.append((placeholder, f"named:{name}"))
        else:
            shape.append((placeholder, classes.setdefault(name, len(classes))))
    return tuple(shape)


def names_key(text: str, names: dict[str, str] | None, key_attrs: list[str]) -> Any:
    """The names, as the static checks' cache keys them: by their shape (``names_shape``) when
    every path of the text is one word; by the names themselves when a path has parts (moto's
    overlap check compares a name with a path's whole text, ``a.b`` or ``#m.#k``)."""
    if "." in text or "[" in text:
        return json.dumps(names, sort_keys=True)
    return names_shape(text, names, key_attrs)


#: a word of an expression that is not a placeholder (an attribute's name, or a keyword)
LITERAL_NAME = re.compile(r"(?<![#:\w])[A-Za-z_]\w*")


def apply() -> None:
    global _applied
    if _applied:
        return
    from moto import backends
    from moto.dynamodb import comparisons
    from moto.dynamodb import models, responses
    from moto.dynamodb.parsing import expressions

    modules = tuple(backends.list_of_moto_modules())
    list_modules = backends.list_of_moto_modules

    def cached_modules() -> Any:
        return modules if enabled else list_modules()

    backends.list_of_moto_modules = cached_modules  # type: ignore[assignment]

    from moto.core import responses as core_responses

    method_names = core_responses.method_names_from_class
    names_of: dict[type, list[str]] = {}

    def cached_method_names(clazz: Any) -> list[str]:
        if not enabled:
            return method_names(clazz)
        if clazz not in names_of:
            names_of[clazz] = method_names(clazz)
        return list(names_of[clazz])

    core_responses.method_names_from_class = cached_method_names

    parser = expressions.UpdateExpressionParser
    make = parser.make.__func__  # type: ignore[attr-defined]
    trees: OrderedDict[str, Any] = OrderedDict()

    def cached_make(cls: Any, expression: str) -> Any:
        if not enabled:
            return make(cls, expression)
        tree = trees.get(expression)
        if tree is None:
            tree = make(cls, expression)  # a syntax error raises, and nothing is kept
            tree._fast_parse_text = expression
            trees[expression] = tree
            if len(trees) > UPDATE_TREES:
                trees.popitem(last=False)
        return tree

    parser.make = classmethod(cached_make)  # type: ignore[assignment]

    def kept(tree: Any) -> str | None:
        """The text of a tree this module keeps (None: a tree moto parsed by itself, or a copy)."""
        text = getattr(tree, "_fast_parse_text", None)
        return text if enabled and text is not None and trees.get(text) is tree else None

    from moto.dynamodb.parsing.ast_nodes import Node
    from moto.dynamodb.parsing.validators import (
        ActionCountValidator,
        OverlappingPathsValidator,
        UpdateExpressionValidator,
        UpdateHashRangeKeyValidator,
    )

    find_clauses = Node.find_clauses
    found_in: dict[tuple, list] = {}

    def cached_find_clauses(self: Any, kinds: Any) -> Any:
        text = kept(self)
        if text is None:
            return find_clauses(self, kinds)
        key = (text, tuple(kinds))
        found = found_in.get(key)
        if found is None:
            found = find_clauses(self, kinds)
            if len(found_in) >= 2 * UPDATE_TREES:
                found_in.clear()
            found_in[key] = found
        return list(found)

    Node.find_clauses = cached_find_clauses  # type: ignore[method-assign]

    from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser

    traverse = DepthFirstTraverser.traverse_node_recursively
    is_node: dict[type, bool] = {}
    processes: dict[tuple[type, type], bool] = {}

    def quick_traverse(self: Any, node: Any, child_id: int = -1) -> Any:
        # moto's traverse_node_recursively, with its two isinstance checks answered per class
        if not enabled:
            return traverse(self, node, child_id)
        cls = node.__class__
        a_node = is_node.get(cls)
        if a_node is None:
            a_node = is_node[cls] = issubclass(cls, Node)
        if not a_node:
            return node
        parent_node = node.parent
        if node.children is not None:
            for i, child_node in enumerate(node.children):
                self.pre_processing_of_child(node, i)
                self.traverse_node_recursively(child_node, i)
        pair = (self.__class__, cls)
        wanted = processes.get(pair)
        if wanted is None:
            wanted = processes[pair] = issubclass(cls, self.nodes_to_be_processed())
        if wanted:
            node = self.process(node)
            node.parent = parent_node
            if parent_node:
                parent_node.children[child_id] = node
        return node

    DepthFirstTraverser.traverse_node_recursively = quick_traverse  # type: ignore[method-assign]

    STATIC = (ActionCountValidator, OverlappingPathsValidator, UpdateHashRangeKeyValidator)
    passed: set[tuple] = set()
    init, validate = UpdateExpressionValidator.__init__, UpdateExpressionValidator.validate

    def quick_init(self: Any, expression: Any, expression_attribute_names: Any, expression_attribute_values: Any,
                   item: Any, table: Any) -> None:
        text = kept(expression)
        if text is None:
            init(self, expression, expression_attribute_names, expression_attribute_values, item, table)
            self._fast_parse_key = None
            return
        # Validator.__init__, with the copy made from the tree's pickle
        self.expression_attribute_names = expression_attribute_names
        self.expression_attribute_values = expression_attribute_values
        self.item = item
        self.table = table
        self.processors = self.get_ast_processors()
        pickled = getattr(expression, "_fast_parse_pickle", None)
        if pickled is None:
            pickled = expression._fast_parse_pickle = pickle.dumps(expression, pickle.HIGHEST_PROTOCOL)
        self.node_to_validate = pickle.loads(pickled)
        self._fast_parse_key = (text, names_key(text, expression_attribute_names, table.table_key_attrs),
                                table.name, tuple(table.table_key_attrs))
        if self._fast_parse_key in passed:
            self.processors = [p for p in self.processors if not isinstance(p, STATIC)]

    def remembering_validate(self: Any) -> Any:
        node = validate(self)  # raises when a check fails: nothing is remembered
        if self._fast_parse_key is not None:
            passed.add(self._fast_parse_key)
            if len(passed) > 4 * UPDATE_TREES:
                passed.clear()
        return node

    UpdateExpressionValidator.__init__ = quick_init  # type: ignore[method-assign]
    UpdateExpressionValidator.validate = remembering_validate  # type: ignore[method-assign]

    base = comparisons.ConditionExpressionParser
    parses: OrderedDict[tuple, tuple] = OrderedDict()

    class CachedConditionParser(base):  # type: ignore[misc, valid-type]
        def parse(self) -> Any:
            if not enabled or not self.condition_expression:
                return super().parse()
            key = (self.condition_expression,
                   json.dumps(self.expression_attribute_names, sort_keys=True),
                   json.dumps(self.expression_attribute_values, sort_keys=True))
            found = parses.get(key)
            if found is None:
                # parsed from a private copy of the values: moto's operators keep the values they
                # were given, and a set value taken into an item by this request (SET #s = :set)
                # would otherwise be the very list a later ADD changes in place
                self.expression_attribute_values = copy.deepcopy(self.expression_attribute_values)
                op = super().parse()
                found = (op, list(self.expr_attr_names_found), list(self.expr_attr_values_found))
                parses[key] = found
                if len(parses) > CONDITIONS:
                    parses.popitem(last=False)
                return op
            op, names, values = found
            self.expr_attr_names_found.extend(names)
            self.expr_attr_values_found.extend(values)
            return op

    def create_parser(expr: Any, names: Any, values: Any) -> Any:
        return CachedConditionParser(expr, names, values)

    comparisons.create_condition_expression_parser = create_parser
    for module in (models, responses):
        if hasattr(module, "create_condition_expression_parser"):
            module.create_condition_expression_parser = create_parser
    _applied = True


# ---- UpdateItem of plain top-level SET and REMOVE ------------------------------------------

#: ``SET #a = :v, #b = :w`` and/or ``REMOVE #c, #d`` (each clause once), nothing else
_PLAIN_SET = r"SET\s+#\w+\s*=\s*:\w+(?:\s*,\s*#\w+\s*=\s*:\w+)*"
_PLAIN_REMOVE = r"REMOVE\s+#\w+(?:\s*,\s*#\w+)*"
PLAIN_UPDATE = re.compile(
    rf"\s*(?:(?P<s1>{_PLAIN_SET})(?:\s+(?P<r1>{_PLAIN_REMOVE}))?|(?P<r2>{_PLAIN_REMOVE})(?:\s+(?P<s2>{_PLAIN_SET}))?)\s*",
    re.IGNORECASE)
_ASSIGNMENT = re.compile(r"(#\w+)\s*=\s*(:\w+)")
_PLACEHOLDER_NAME = re.compile(r"#\w+")


def plain_update(update_expression: str | None, names: dict | None, values: dict | None,
                 table: Any) -> tuple[list[tuple[str, dict]], list[str], bool] | None:
    """(sets, removes, whether the REMOVE clause comes first) of an update that only sets
    top-level attributes to values (none of them a key attribute of the table or of an index)
    and removes top-level attributes (none of the table's keys), each named once, every
    placeholder defined; None for anything else (moto then does it all itself)."""
    if not update_expression:
        return None
    match = PLAIN_UPDATE.fullmatch(update_expression)
    if match is None:
        return None
    names, values = names or {}, values or {}
    set_text = match.group("s1") or match.group("s2") or ""
    remove_text = match.group("r1") or match.group("r2") or ""
    sets = []
    for name, value in _ASSIGNMENT.findall(set_text[3:]):
        if not _a_name(names.get(name)) or value not in values or _empty_set(values[value]):
            return None
        sets.append((names[name], values[value]))
    removes = []
    for name in _PLACEHOLDER_NAME.findall(remove_text[6:]):
        if not _a_name(names.get(name)):
            return None
        removes.append(names[name])
    targets = [name for name, _ in sets] + removes
    if len(set(targets)) != len(targets) or set(table.table_key_attrs).intersection(removes):
        return None
    # a value set on an index's key is checked for its type and emptiness: moto checks those
    if (set(table.attribute_keys) | {a["AttributeName"] for a in table.attr}).intersection(name for name, _ in sets):
        return None
    return sets, removes, bool(match.group("r2"))


def _a_name(name: Any) -> bool:
    return isinstance(name, str) and bool(name)


def _empty_set(value: Any) -> bool:
    return isinstance(value, dict) and any(kind in value and not value[kind] for kind in ("SS", "NS", "BS"))


def simple_update_item(moto_update_item: Any, backend: Any, table_name: str, key: dict, update_expression: str | None = None,
                       expression_attribute_names: dict | None = None, expression_attribute_values: dict | None = None,
                       attribute_updates: dict | None = None, expected: dict | None = None,
                       condition_expression: str | None = None,
                       return_values_on_condition_check_failure: str | None = None) -> Any:
    """moto's ``DynamoDBBackend.update_item`` (``moto_update_item``), done without its parse,
    seven tree walks and executor when the update is plain (``plain_update``): the condition
    checked as moto checks it, the item made as moto makes it (its keys first), each value set
    and each attribute removed as moto's executor sets and removes them, one stream record."""
    from moto.dynamodb import models
    from moto.dynamodb.exceptions import ConditionalCheckFailed, ItemSizeTooLarge, ItemSizeToUpdateTooLarge
    from moto.dynamodb.models.dynamo_type import DynamoType

    table = backend.get_table(table_name)
    plain = None
    if enabled and not attribute_updates and not expected:
        plain = plain_update(update_expression, expression_attribute_names, expression_attribute_values, table)
    if plain is None:
        return moto_update_item(
            backend, table_name, key, update_expression, expression_attribute_names, expression_attribute_values,
            attribute_updates, expected, condition_expression, return_values_on_condition_check_failure)
    sets, removes, remove_first = plain
    hash_value, range_value = backend.get_keys_value(table, key)
    item = table.get_item(hash_value, range_value)
    original = copy.deepcopy(item)
    if condition_expression:
        condition = models.create_condition_expression_parser(
            condition_expression, expression_attribute_names, expression_attribute_values).parse()
        if not condition.expr(item):
            if return_values_on_condition_check_failure == "ALL_OLD" and item is not None:
                raise ConditionalCheckFailed(item=item.to_json()["Attributes"])
            raise ConditionalCheckFailed
    typed = [(name, DynamoType(value)) for name, value in sets]  # every value read before any is set, as moto
    if item is None:
        data = {table.hash_key_attr: {hash_value.type: hash_value.value}}
        if range_value:
            data[table.range_key_attr] = {range_value.type: range_value.value}
        table.put_item(data)
        item = table.get_item(hash_value, range_value)
    try:
        if remove_first:  # moto applies the clauses in the order of the text (the size is checked at each set)
            for name in removes:
                item.attrs.pop(name, None)
        for name, value in typed:
            item.attrs[name] = value
        if not remove_first:
            for name in removes:
                item.attrs.pop(name, None)
    except ItemSizeTooLarge:
        raise ItemSizeToUpdateTooLarge() from None
    if table.stream_shard is not None:
        table.stream_shard.add(original, item)
    return item
