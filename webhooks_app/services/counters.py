"""Counters that only grow, kept in the database (metric_counters) in the transaction that did the counted work."""

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ..database import dialect_name
from ..extensions import db
from ..models import MetricCounter

counters = MetricCounter.__table__

# webhooks_replayed_total{origin}: messages made by Send again, and by Replay missed events.
REPLAYED_SEND_AGAIN = "replayed:send_again"
REPLAYED_MISSED_EVENTS = "replayed:missed_events"


def add_to_counter(name: str, amount: int) -> None:
    """Add `amount` to a counter in the caller's transaction (created at 0 the first time)."""
    if amount <= 0:
        return
    insert_for_dialect = postgresql_insert if dialect_name() == "postgresql" else sqlite_insert
    statement = insert_for_dialect(counters).values(name=name, value=amount)
    db.session.execute(statement.on_conflict_do_update(
        index_elements=[counters.c.name], set_={"value": counters.c.value + statement.excluded.value}))


def counter_values(*names: str) -> dict[str, int]:
    """The counters' values; 0 for one never added to."""
    stored = dict(db.session.execute(select(MetricCounter.name, MetricCounter.value)
                                     .where(MetricCounter.name.in_(names))).all())
    return {name: stored.get(name, 0) for name in names}
