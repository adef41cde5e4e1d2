"""What a report is asked with: its dates, how they are cut, what each row is about, and the format."""

from __future__ import annotations

from datetime import date
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from core.reports.periods import MAX_DAYS, Grouping, Interval

#: The dates a report may name: any the clinic's books could hold, none a clock cannot.
EARLIEST, LATEST = date(1970, 1, 1), date(2199, 12, 31)


class ReportArgs(Schema):
    date_from = fields.Date(
        required=True,
        data_key="from",
        validate=validate.Range(min=EARLIEST, max=LATEST),
        metadata={"description": "The first day, on the clinic's calendar (YYYY-MM-DD)."},
    )
    date_to = fields.Date(
        required=True,
        data_key="to",
        validate=validate.Range(min=EARLIEST, max=LATEST),
        metadata={"description": f"The last day, inclusive; at most {MAX_DAYS} days after `from`."},
    )
    interval = fields.Enum(Interval, load_default=Interval.month, by_value=True)
    by = fields.Enum(
        Grouping,
        load_default=Grouping.clinic,
        by_value=True,
        metadata={"description": "One row per period for the clinic, or per location or provider."},
    )
    format = fields.String(
        load_default="json",
        validate=validate.OneOf(["json", "csv"]),
        metadata={"description": "`csv` answers text/csv, amounts in major units."},
    )

    @validates_schema
    def _span(self, data: dict[str, Any], **_: Any) -> None:
        first, last = data.get("date_from"), data.get("date_to")
        if first is None or last is None:
            return
        if last < first:
            raise ValidationError("Must not be before `from`.", field_name="to")
        if (last - first).days + 1 > MAX_DAYS:
            raise ValidationError(f"A report covers at most {MAX_DAYS} days.", field_name="to")


class ReportSchema(Schema):
    report = fields.String()
    clinic = fields.String()
    currency = fields.String()
    timezone = fields.String()
    date_from = fields.Date(data_key="from")
    date_to = fields.Date(data_key="to")
    interval = fields.String()
    by = fields.String()
    columns = fields.List(fields.String())
    money_columns = fields.List(
        fields.String(), metadata={"description": "Columns in minor units of `currency`."}
    )
    rows = fields.List(fields.Dict())
    totals = fields.Dict()
