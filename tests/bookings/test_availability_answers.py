"""Availability answers kept between requests are never stale: each change shows in the next answer."""

from __future__ import annotations

from sqlalchemy import event

from core.extensions import db
from tests.bookings.test_bookings import _location_id, book_online, slots
from tests.helpers import set_clinic_settings

DAY = "2026-03-03"
TEN = "2026-03-03T10:00:00-08:00"


def _statements(app, client, alpha) -> int:
    """How many SQL statements one availability request makes."""
    seen: list[str] = []
    with app.app_context():
        engine = db.engine

    def count(conn, cursor, statement, *args):
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        slots(client, alpha, DAY, DAY)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    return len(seen)


def test_an_answer_is_kept_and_reused_while_nothing_changes(app, client, alpha):
    first = slots(client, alpha, DAY, DAY)
    worked_out = _statements(app, client, alpha)  # kept from the first request: reused
    assert slots(client, alpha, DAY, DAY) == first
    # Reused: no working hours or calendar read, only what tells whether it is still true.
    with app.app_context():
        set_clinic_settings("alpha", bookings={"slot_step_minutes": 30})
    recomputed = _statements(app, client, alpha)
    assert worked_out < recomputed, (worked_out, recomputed)


def test_a_new_booking_disappears_from_the_next_answer_at_once(app, client, alpha):
    # Issue: "caching that stays correct when a booking, hours or time off change (a test
    # proves a new booking disappears from the next answer at once)".
    assert TEN in slots(client, alpha, DAY, DAY)
    assert book_online(client, alpha, TEN).status_code == 201
    assert TEN not in slots(client, alpha, DAY, DAY)


def test_a_cancelled_booking_comes_back_in_the_next_answer(app, client, alpha):
    booked = book_online(client, alpha, TEN).get_json()["booking"]
    assert TEN not in slots(client, alpha, DAY, DAY)
    cancelled = client.post(
        f"/api/v1/clinics/alpha/bookings/{booked['id']}/cancellation",
        json={"by": "clinic"},
        headers=alpha["auth"],
    )
    assert cancelled.status_code == 200, cancelled.get_json()
    assert TEN in slots(client, alpha, DAY, DAY)


def test_a_moved_booking_frees_its_old_time_and_takes_the_new_one(app, client, alpha):
    booked = book_online(client, alpha, TEN).get_json()["booking"]
    before = slots(client, alpha, DAY, DAY)
    assert TEN not in before and "2026-03-03T14:00:00-08:00" in before
    moved = client.post(
        f"/api/v1/clinics/alpha/bookings/{booked['id']}/reschedule",
        json={"starts_at": "2026-03-03T14:00:00-08:00"},
        headers=alpha["auth"],
    )
    assert moved.status_code == 200, moved.get_json()
    after = slots(client, alpha, DAY, DAY)
    assert TEN in after and "2026-03-03T14:00:00-08:00" not in after


def test_changed_hours_and_time_off_show_in_the_next_answer(app, client, alpha):
    assert TEN in slots(client, alpha, DAY, DAY)
    with app.app_context():
        location = _location_id("alpha")
    hours = [
        {"location_id": location, "weekday": d, "starts": "12:00", "ends": "17:00"}
        for d in range(7)
    ]
    changed = client.put(
        f"/api/v1/clinics/alpha/providers/{alpha['provider']}/hours",
        json={"hours": hours},
        headers=alpha["auth"],
    )
    assert changed.status_code == 200, changed.get_json()
    after_hours = slots(client, alpha, DAY, DAY)
    assert TEN not in after_hours and "2026-03-03T12:00:00-08:00" in after_hours
    away = client.post(
        f"/api/v1/clinics/alpha/providers/{alpha['provider']}/time-off",
        json={"starts_at": "2026-03-03T12:00:00-08:00", "ends_at": "2026-03-03T14:00:00-08:00"},
        headers=alpha["auth"],
    )
    assert away.status_code == 201, away.get_json()
    assert "2026-03-03T12:00:00-08:00" not in slots(client, alpha, DAY, DAY)


def test_a_hold_that_runs_out_frees_its_time_with_nothing_written(app, client, alpha, frozen):
    with app.app_context():
        set_clinic_settings(
            "alpha", policy={"guarantee": "card_or_gift_certificate"}, bookings={"hold_minutes": 15}
        )
    held = book_online(client, alpha, TEN).get_json()["booking"]
    assert held["status"] == "held"
    assert TEN not in slots(client, alpha, DAY, DAY)  # kept with the hold in force
    frozen.shift(16 * 60)
    assert TEN in slots(client, alpha, DAY, DAY)


def test_the_notice_period_moves_with_the_clock(app, client, alpha, frozen):
    # Online bookings need 120 minutes' notice (the default): the earliest start moves on.
    today = "2026-03-02"  # NOW is 10:00 in Los Angeles
    first = slots(client, alpha, today, today)
    assert first[0] == "2026-03-02T12:00:00-08:00"
    frozen.shift(16 * 60)
    assert slots(client, alpha, today, today)[0] == "2026-03-02T12:30:00-08:00"
