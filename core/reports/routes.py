"""HTTP API for the clinic's reports, as JSON or as CSV for a spreadsheet."""

from __future__ import annotations

import csv
import io
from typing import Any

from flask import Response
from flask.views import MethodView

from core.accounts.access import Permission, current_clinic, requires
from core.api import Blueprint, json_response
from core.errors import NotFound
from core.money import Money
from core.reports import services
from core.reports.periods import Grouping, Span
from core.reports.schemas import ReportArgs, ReportSchema

blp = Blueprint(
    "reports",
    __name__,
    url_prefix="/api/v1/clinics/<clinic_slug>/reports",
    description="Money, bookings, utilisation and what is held for clients, by period.",
)

NAMES = ("money", "bookings", "utilisation", "liabilities")


@blp.route("/<name>")
class ClinicReport(MethodView):
    @requires(Permission.view_reports)
    @blp.arguments(ReportArgs, location="query")
    @blp.response(200, ReportSchema)
    def get(self, args: dict[str, Any], clinic_slug: str, name: str) -> Response:
        """One report over a span of the clinic's days, cut by day, week or month.

        `money`: deposits, fees, refunds by reason, store credit, gift certificates,
        packages, disputes, from the ledger. `bookings`: bookings online and by staff,
        cancellations inside and outside the window, no-shows, late arrivals, their
        rates and fees. `utilisation`: booked over working minutes. `liabilities`: what
        is held for clients at each period's end (not cut by location or provider).
        Money is in minor units of `currency` (`money_columns` names them); with
        `format=csv` the rows come as CSV, money in major units.
        """
        clinic = current_clinic()
        span = Span(args["date_from"], args["date_to"], args["interval"], clinic.timezone)
        if name == "liabilities":
            report = services.liabilities(clinic, span)
        elif name in services.REPORTS:
            report = services.REPORTS[name](clinic, span, args["by"])
        else:
            raise NotFound(f"No such report; the reports are {', '.join(NAMES)}.")
        if args["format"] == "csv":
            return _csv(report)
        return json_response(report.as_dict(), 200)


def _csv(report: services.Report) -> Response:
    """The report's rows as CSV: a header, one line per row, money as decimals, then the totals."""
    keys = ["period"]
    if report.by is not Grouping.clinic:
        keys += [f"{report.by.value}_id", f"{report.by.value}_name"]
    columns = list(report.columns)
    for row in report.rows[:1]:
        columns += [key for key in row if key not in keys and key not in columns]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(keys + columns)

    def cell(column: str, value: Any) -> Any:
        if column in report.money_columns and isinstance(value, int):
            return str(Money(value, report.currency).to_decimal())
        return "" if value is None else value

    for row in report.rows:
        writer.writerow([row.get(k, "") for k in keys] + [cell(c, row.get(c)) for c in columns])
    writer.writerow(
        ["total"] + [""] * (len(keys) - 1) + [cell(c, report.totals.get(c)) for c in columns]
    )
    filename = f"{report.clinic}-{report.name}-{report.span.first}-{report.span.last}.csv"
    return Response(
        out.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
