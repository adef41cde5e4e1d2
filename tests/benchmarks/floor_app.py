"""The served benchmark's floor: a bare Flask + SQLAlchemy app that inserts one row or reads a provider's rows."""

from __future__ import annotations

import os
from datetime import UTC, datetime, time, timedelta

from flask import Flask, Response, jsonify, request
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import BigInteger, DateTime, Index, Integer, MetaData, func, select
from sqlalchemy.orm import Mapped, mapped_column

#: Its own metadata, so the harness creates this table and nothing of the app's.
db = SQLAlchemy(metadata=MetaData())

#: How many days ``GET /rows`` reads, as availability does.
DAYS = 14


class FloorRow(db.Model):  # type: ignore[name-defined]
    """A booking reduced to what a calendar needs: whose, from when, until when."""

    __tablename__ = "floor_row"
    __table_args__ = (Index("ix_floor_row_provider_starts", "provider_id", "starts_at"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    provider_id: Mapped[int] = mapped_column(Integer)
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


def create_app(database_url: str | None = None) -> Flask:
    """Build the floor app on ``database_url`` (default: ``FLOOR_DATABASE_URL``); no auth, no checks."""
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url or os.environ["FLOOR_DATABASE_URL"]
    db.init_app(app)

    @app.post("/insert")
    def insert() -> tuple[dict, int]:
        data = request.get_json()
        starts_at = datetime.fromisoformat(data["starts_at"])
        row = FloorRow(
            provider_id=int(data["provider_id"]),
            starts_at=starts_at,
            ends_at=starts_at + timedelta(minutes=60),
        )
        db.session.add(row)
        db.session.commit()
        return {"id": row.id}, 201

    @app.get("/rows")
    def rows() -> Response:
        # From a moment (the clinic's midnight, with its offset) or a date (UTC); default today.
        start = request.args.get("from", type=datetime.fromisoformat) or datetime.combine(
            datetime.now(UTC).date(), time()
        )
        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
        found = db.session.scalars(
            select(FloorRow)
            .where(
                FloorRow.provider_id == request.args.get("provider", type=int),
                FloorRow.starts_at >= start,
                FloorRow.starts_at < start + timedelta(days=DAYS),
            )
            .order_by(FloorRow.starts_at)
        )
        return jsonify(
            [
                {"id": r.id, "starts_at": r.starts_at.isoformat(), "ends_at": r.ends_at.isoformat()}
                for r in found
            ]
        )

    return app
