"""Dashboard aggregates (统计汇总): daily counts the heavy charts sum instead of reading the
event tables, and the watermark of each source table they were counted up to.

The grain is owner × day × kind (plus `peer_id` and `since` for the two kinds that need
them), which every data scope can sum: a scope is a set of people (app.security), so a
chart sums the rows of those owner ids. There is no department column: scopes and the
department filter name people by their current department, exactly as the live queries
do (a rep who moves takes their history along), and the user table keeps no department
history to date a row by. Rows are written only by app.services.stat_aggregates.
"""
from __future__ import annotations

import datetime as dt

from flask_appbuilder import Model
from sqlalchemy import BigInteger, Column, Date, DateTime, Integer, Numeric, String

NOBODY = 0  # owner_id / peer_id of a row without one (a pool's flow, the whole organisation)
NO_DAY = dt.date(1970, 1, 1)  # `since` of every row but a repeated acquisition


class StatDaily(Model):
    """`n` events of `kind` (and their `amount`) on business day `day` for `owner_id`.

    kinds: acquired (the targets' new customer; `since` = the business day the same owner
    last acquired the same customer, NO_DAY for a first time, so a range counts each
    customer once), claimed, released, reclaimed, transferred (`owner_id` gave it to
    `peer_id`), followup, won (`amount`: the deals' sum), customer_new (NOBODY: customers
    created), pool_in / pool_out (NOBODY, `peer_id` = the pool).
    """

    __tablename__ = "stat_daily"
    # The primary key is the upsert's conflict target and the charts' index: kind, then the
    # owners of a scope, then a day range.
    kind = Column(String(20), primary_key=True)
    owner_id = Column(Integer, primary_key=True, default=NOBODY)
    day = Column(Date, primary_key=True)
    peer_id = Column(Integer, primary_key=True, default=NOBODY)
    since = Column(Date, primary_key=True, default=NO_DAY)
    n = Column(BigInteger, nullable=False, default=0)
    amount = Column(Numeric(18, 2), nullable=False, default=0)


class StatWatermark(Model):
    """The highest id of `source` (a table) already counted in stat_daily; `rebuilt_at` the
    last full rebuild (merges and undos rewrite the past, so one runs nightly)."""

    __tablename__ = "stat_watermark"
    source = Column(String(40), primary_key=True)
    last_id = Column(BigInteger, nullable=False, default=0)
    updated_at = Column(DateTime)
    rebuilt_at = Column(DateTime)
