"""Whether a statement typed for `db explain` is one read-only SELECT, as PostgreSQL's own parser (pglast)
reads it. A module of its own so that pglast is loaded by the first `db explain`, not at the bot's start."""

from __future__ import annotations

import pglast
from pglast import ast
from pglast.visitors import Visitor


class Writes(Visitor):
    """Data-modifying statements anywhere in the tree (a WITH … DELETE … SELECT writes)."""

    def __init__(self) -> None:
        self.found: list[str] = []

    def visit_InsertStmt(self, ancestors: object, node: ast.Node) -> None:
        self.found.append("INSERT")

    def visit_UpdateStmt(self, ancestors: object, node: ast.Node) -> None:
        self.found.append("UPDATE")

    def visit_DeleteStmt(self, ancestors: object, node: ast.Node) -> None:
        self.found.append("DELETE")

    def visit_MergeStmt(self, ancestors: object, node: ast.Node) -> None:
        self.found.append("MERGE")


def read_only_refusal(sql: str) -> str | None:
    """Why `sql` is not one read-only SELECT, as PostgreSQL's parser reads it; None when it is."""
    try:
        statements = pglast.parse_sql(sql)
    except pglast.parser.ParseError as exc:
        return f"PostgreSQL cannot parse it: {str(exc)[:120]}"
    if len(statements) != 1:
        return f"{len(statements)} statements: give one SELECT"
    statement = statements[0].stmt
    if not isinstance(statement, ast.SelectStmt):
        return f"it is {type(statement).__name__.removesuffix('Stmt').upper()}, not a SELECT"
    if statement.intoClause is not None:
        return "SELECT … INTO creates a table"
    writes = Writes()
    writes(statement)
    if writes.found:
        return f"its WITH runs {', '.join(sorted(set(writes.found)))}"
    if statement.lockingClause:
        return "SELECT … FOR UPDATE/SHARE takes row locks"
    return None
