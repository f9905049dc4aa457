"""Statistical disclosure control: small-cell suppression and k-anonymity. Pure code.

Aggregate tables
----------------
A published table is its cells plus its margins: a total per row, a total per column and a
grand total. Every one of those numbers lies on two *lines*: its row (the row's cells and
the row total) and its column (the column's cells and the column total); the totals row and
the totals column are lines too. Within a line, the total equals the sum of the cells.

1. **Primary suppression.** Every number below ``k`` (zero included) is withheld.
2. **Secondary suppression.** A line with exactly one withheld number would give it away
   (total minus the visible cells). While such a line exists, the smallest visible number
   of that line is withheld too (ties: an inner cell before a total, then the first in
   reading order); repeat until no line has exactly one.

   A line whose total is shown and whose withheld cells add up to less than ``k`` (two
   zeros, a 1 and a 2) gives their small sum away: it loses its smallest visible cell too.
3. **Combined lines.** Adding and subtracting several rows and columns can still pin a
   withheld number down. Seen as a graph (rows and columns are nodes, withheld numbers are
   edges), a withheld number is determined by the published ones exactly when its edge lies
   on no cycle (a *bridge*). For each bridge, the smallest visible number joining the two
   sides is withheld too, which closes a cycle through it.
4. **Linked tables.** Tables of one release often share margins (referrals by age appear in
   two tables). Margins carry a *link key*; a number withheld in one table is withheld
   wherever the same key appears, and steps 2 and 3 run again, until nothing changes.

Guarantee, per table: no published number is below ``k``; no withheld number can be
computed from the published ones by any combination of rows and columns (every withheld
number has at least a one-parameter family of other values consistent with all totals);
and no shown total minus its visible cells is a sum below ``k``. See docs/reporting.md.

Record-level data
-----------------
:func:`k_anonymise` recodes quasi-identifiers along generalisation hierarchies (e.g.
citizenship -> world region -> ``*``) by a Datafly-style search: while more than a budget
of records sit in equivalence classes smaller than ``k``, the quasi-identifier with the most
distinct values is generalised one level; the records still in classes below ``k`` are then
suppressed. Every published combination of quasi-identifiers occurs at least ``k`` times.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Cell = tuple[int, int]


@dataclass
class CountTable:
    """A two-way table of counts before disclosure control."""

    name: str
    title: str
    row_dimension: str
    column_dimension: str
    rows: list[str]
    columns: list[str]
    cells: list[list[int]]
    row_keys: list[str | None] | None = None  # link keys of the row totals
    column_keys: list[str | None] | None = None  # link keys of the column totals
    total_key: str | None = None

    def without_empty_lines(self) -> CountTable:
        """Drop rows and columns that are zero throughout (structural zeros)."""
        keep_rows = [i for i, row in enumerate(self.cells) if any(row)]
        keep_cols = [j for j in range(len(self.columns)) if any(r[j] for r in self.cells)]
        return CountTable(
            name=self.name,
            title=self.title,
            row_dimension=self.row_dimension,
            column_dimension=self.column_dimension,
            rows=[self.rows[i] for i in keep_rows],
            columns=[self.columns[j] for j in keep_cols],
            cells=[[self.cells[i][j] for j in keep_cols] for i in keep_rows],
            row_keys=[self.row_keys[i] for i in keep_rows] if self.row_keys else None,
            column_keys=[self.column_keys[j] for j in keep_cols] if self.column_keys else None,
            total_key=self.total_key,
        )


@dataclass
class PublishedTable:
    """A table after disclosure control; ``None`` marks a withheld number."""

    name: str
    title: str
    row_dimension: str
    column_dimension: str
    rows: list[str]
    columns: list[str]
    cells: list[list[int | None]]
    row_totals: list[int | None]
    column_totals: list[int | None]
    grand_total: int | None
    primary: int = 0
    secondary: int = 0

    def lines(self) -> list[list[int | None]]:
        """Every row and column including its total (for checks)."""
        out: list[list[int | None]] = []
        for i, row in enumerate(self.cells):
            out.append([*row, self.row_totals[i]])
        out.append([*self.column_totals, self.grand_total])
        for j in range(len(self.columns)):
            out.append([*(row[j] for row in self.cells), self.column_totals[j]])
        out.append([*self.row_totals, self.grand_total])
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "row_dimension": self.row_dimension,
            "column_dimension": self.column_dimension,
            "columns": self.columns,
            "rows": [
                {"label": label, "cells": self.cells[i], "total": self.row_totals[i]}
                for i, label in enumerate(self.rows)
            ],
            "column_totals": self.column_totals,
            "grand_total": self.grand_total,
            "suppressed": {"primary": self.primary, "secondary": self.secondary},
        }


@dataclass
class _Grid:
    table: CountTable
    values: list[list[int]] = field(default_factory=list)
    withheld: list[list[bool]] = field(default_factory=list)
    keys: dict[Cell, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        t = self.table
        rows, cols = len(t.rows), len(t.columns)
        self.values = [[*row, sum(row)] for row in t.cells]
        totals = [sum(t.cells[i][j] for i in range(rows)) for j in range(cols)]
        self.values.append([*totals, sum(totals)])
        self.withheld = [[False] * (cols + 1) for _ in range(rows + 1)]
        for i, key in enumerate(t.row_keys or []):
            if key:
                self.keys[(i, cols)] = key
        for j, key in enumerate(t.column_keys or []):
            if key:
                self.keys[(rows, j)] = key
        if t.total_key:
            self.keys[(rows, cols)] = t.total_key

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.values), len(self.values[0])

    def lines(self) -> list[list[Cell]]:
        height, width = self.shape
        rows = [[(r, c) for c in range(width)] for r in range(height)]
        cols = [[(r, c) for r in range(height)] for c in range(width)]
        return rows + cols

    def is_margin(self, cell: Cell) -> bool:
        height, width = self.shape
        return cell[0] == height - 1 or cell[1] == width - 1

    def order(self, cell: Cell) -> tuple[int, bool, Cell]:
        """Which visible number to give up first: the smallest, an inner cell before a total."""
        return (self.values[cell[0]][cell[1]], self.is_margin(cell), cell)

    def withhold(self, cell: Cell) -> None:
        self.withheld[cell[0]][cell[1]] = True


def _line_gives_away(grid: _Grid, line: list[Cell], k: int) -> bool:
    """One withheld number in the line, or a shown total revealing a withheld sum below k."""
    withheld = [cell for cell in line if grid.withheld[cell[0]][cell[1]]]
    if not withheld or len(withheld) == len(line):
        return False  # nothing hidden, or nothing left to hide it with
    if len(withheld) == 1:
        return True
    total = line[-1]  # each line ends with its total
    if grid.withheld[total[0]][total[1]]:
        return False
    return sum(grid.values[r][c] for r, c in withheld) < k


def _bridges(grid: _Grid) -> list[Cell]:
    """Withheld numbers on no cycle of the row/column graph: those are computable.

    Nodes are the lines (``("r", i)`` and ``("c", j)``, totals included), edges the withheld
    numbers. Tarjan's bridge search, iterative (a table can have hundreds of rows).
    """
    height, width = grid.shape
    edges = [(r, c) for r in range(height) for c in range(width) if grid.withheld[r][c]]
    adjacent: dict[tuple[str, int], list[tuple[tuple[str, int], int]]] = {}
    for index, (r, c) in enumerate(edges):
        adjacent.setdefault(("r", r), []).append((("c", c), index))
        adjacent.setdefault(("c", c), []).append((("r", r), index))
    order: dict[tuple[str, int], int] = {}
    low: dict[tuple[str, int], int] = {}
    bridges: list[Cell] = []
    for root in adjacent:
        if root in order:
            continue
        order[root] = low[root] = len(order)
        stack = [(root, -1, iter(adjacent[root]))]
        while stack:
            node, via, neighbours = stack[-1]
            advanced = False
            for neighbour, index in neighbours:
                if index == via:
                    continue
                if neighbour in order:
                    low[node] = min(low[node], order[neighbour])
                    continue
                order[neighbour] = low[neighbour] = len(order)
                stack.append((neighbour, index, iter(adjacent[neighbour])))
                advanced = True
                break
            if advanced:
                continue
            stack.pop()
            if stack:
                parent = stack[-1][0]
                low[parent] = min(low[parent], low[node])
                if low[node] > order[parent]:
                    bridges.append(edges[via])
    return bridges


def _cycle_closer(grid: _Grid, bridge: Cell) -> Cell | None:
    """The smallest visible number joining the two sides of a bridge (closes a cycle)."""
    height, width = grid.shape

    def reach(start: tuple[str, int]) -> set[tuple[str, int]]:
        """The nodes reachable from ``start`` over withheld numbers, the bridge excluded."""
        seen: set[tuple[str, int]] = set()
        todo = [start]
        while todo:
            node = todo.pop()
            if node in seen:
                continue
            seen.add(node)
            kind, index = node
            for other in range(width if kind == "r" else height):
                cell = (index, other) if kind == "r" else (other, index)
                if cell != bridge and grid.withheld[cell[0]][cell[1]]:
                    todo.append(("c", other) if kind == "r" else ("r", other))
        return seen

    row_side, column_side = reach(("r", bridge[0])), reach(("c", bridge[1]))
    candidates = [
        (r, c)
        for r in range(height)
        for c in range(width)
        if not grid.withheld[r][c]
        and (
            (("r", r) in row_side and ("c", c) in column_side)
            or (("r", r) in column_side and ("c", c) in row_side)
        )
    ]
    return min(candidates, key=grid.order) if candidates else None


def suppress(tables: Sequence[CountTable], k: int) -> list[PublishedTable]:
    """Primary and secondary suppression over a set of (possibly linked) tables."""
    if k < 1:
        raise ValueError("k must be at least 1")
    grids = [_Grid(t) for t in tables]
    primary = []
    for grid in grids:
        count = 0
        height, width = grid.shape
        for r in range(height):
            for c in range(width):
                if grid.values[r][c] < k:
                    grid.withheld[r][c] = True
                    count += 1
        primary.append(count)
    changed = True
    while changed:
        changed = False
        for grid in grids:
            lines_changed = False
            for line in grid.lines():
                if _line_gives_away(grid, line, k):
                    visible = [cell for cell in line if not grid.withheld[cell[0]][cell[1]]]
                    grid.withhold(min(visible, key=grid.order))
                    lines_changed = changed = True
            if lines_changed:
                continue  # bridges are sought once every line holds 0 or 2+ withheld numbers
            for bridge in _bridges(grid):
                closer = _cycle_closer(grid, bridge)
                if closer is None:  # nothing visible left around it (an empty table's 0)
                    continue
                grid.withhold(closer)
                changed = True
                break  # the graph changed: look for bridges again
        # Linked margins: withheld anywhere means withheld everywhere.
        withheld_keys = {
            key
            for grid in grids
            for cell, key in grid.keys.items()
            if grid.withheld[cell[0]][cell[1]]
        }
        for grid in grids:
            for cell, key in grid.keys.items():
                if key in withheld_keys and not grid.withheld[cell[0]][cell[1]]:
                    grid.withheld[cell[0]][cell[1]] = True
                    changed = True
    out = []
    for grid, first in zip(grids, primary, strict=True):
        t = grid.table
        rows, cols = len(t.rows), len(t.columns)

        def shown(r: int, c: int, g: _Grid = grid) -> int | None:
            return None if g.withheld[r][c] else g.values[r][c]

        total_withheld = sum(sum(row) for row in grid.withheld)
        out.append(
            PublishedTable(
                name=t.name,
                title=t.title,
                row_dimension=t.row_dimension,
                column_dimension=t.column_dimension,
                rows=list(t.rows),
                columns=list(t.columns),
                cells=[[shown(r, c) for c in range(cols)] for r in range(rows)],
                row_totals=[shown(r, cols) for r in range(rows)],
                column_totals=[shown(rows, c) for c in range(cols)],
                grand_total=shown(rows, cols),
                primary=first,
                secondary=total_withheld - first,
            )
        )
    return out


# --------------------------------------------------------------------------- k-anonymity


@dataclass(frozen=True)
class Hierarchy:
    """Generalisation levels of one quasi-identifier; level 0 is the value itself."""

    field: str
    levels: tuple[Callable[[Any], str], ...]

    @property
    def top(self) -> int:
        return len(self.levels) - 1


def _star(_: Any) -> str:
    return "*"


def hierarchy(name: str, *steps: Callable[[Any], str]) -> Hierarchy:
    """``hierarchy("gender")`` is value -> ``*``; extra steps go in between."""
    return Hierarchy(name, (lambda v: "" if v is None else str(v), *steps, _star))


@dataclass
class KAnonymous:
    records: list[dict[str, Any]]
    levels: dict[str, int]
    suppressed: int


def k_anonymise(
    records: Sequence[Mapping[str, Any]],
    hierarchies: Sequence[Hierarchy],
    k: int,
    *,
    max_suppressed: float = 0.05,
) -> KAnonymous:
    """Generalise quasi-identifiers, then suppress records in classes smaller than ``k``."""
    if k < 1:
        raise ValueError("k must be at least 1")
    levels = {h.field: 0 for h in hierarchies}
    fields = [h.field for h in hierarchies]
    # Work on the distinct quasi-identifier combinations, weighted by how many records share
    # each: the search never touches the records themselves until the final pass.
    base: Counter[tuple[Any, ...]] = Counter(tuple(r.get(name) for name in fields) for r in records)

    def generalise(key: tuple[Any, ...]) -> tuple[str, ...]:
        return tuple(h.levels[levels[h.field]](v) for h, v in zip(hierarchies, key, strict=True))

    def classes() -> Counter[tuple[str, ...]]:
        out: Counter[tuple[str, ...]] = Counter()
        for key, n in base.items():
            out[generalise(key)] += n
        return out

    budget = max_suppressed * len(records)
    while True:
        current = classes()
        small = sum(n for n in current.values() if n < k)
        if small <= budget:
            break
        candidates = [h for h in hierarchies if levels[h.field] < h.top]
        if not candidates:
            break
        position = {h.field: i for i, h in enumerate(hierarchies)}
        distinct = {h.field: len({key[position[h.field]] for key in current}) for h in candidates}
        chosen = max(candidates, key=lambda h: (distinct[h.field], -position[h.field]))
        levels[chosen.field] += 1
    current = classes()
    mapping = {key: generalise(key) for key in base}
    out: list[dict[str, Any]] = []
    suppressed = 0
    for record in records:
        key = mapping[tuple(record.get(name) for name in fields)]
        if current[key] < k:
            suppressed += 1
            continue
        row = dict(record)
        for name, value in zip(fields, key, strict=True):
            row[name] = value
        out.append(row)
    out.sort(key=lambda r: tuple(str(r.get(name)) for name in fields))
    return KAnonymous(records=out, levels=levels, suppressed=suppressed)
