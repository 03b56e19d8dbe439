"""Guide: "Data Integrity Issues" — foreign keys nobody validated, totals that do not add up, stock that
disagrees with the warehouses, orders in a status the state machine does not know.

Reading is free; the repairs (order totals, subtotals, stock quantities) are Proposals, restricted to the
rows the check found and re-checked when they run.

The checks read the rules from the database they look at, so they are right on the real ERPGo schema
(upper-case statuses under a CHECK constraint, `check_total_calculation` on the totals,
`product_inventory.warehouse_id`) and on the guide's (free-text lower-case statuses, no constraints):
the valid statuses come from the CHECK constraint or enum on `orders.status`; a validated
`check_total_calculation` means no total can break it, so the subtotal is compared with the order's
items instead — what the real schema still lets go wrong.
"""

from __future__ import annotations

# the modules register their checks in the order the report shows them
# isort: off
from runbooks.integrity import foreign_keys, totals, stock, statuses, constraints

# isort: on
from runbooks.integrity.common import ORDER_TRANSITIONS, runbook

__all__ = ["ORDER_TRANSITIONS", "constraints", "foreign_keys", "runbook", "statuses", "stock", "totals"]
