"""Reminders leave through the outbox: real SMTP on loopback, SMS by consent, each sent once, none lost."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from email import message_from_string
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs

import pytest
import time_machine
from sqlalchemy import select

from core.accounts.models import Role
from core.extensions import db
from core.messaging import channels
from core.messaging.delivery import claim, deliver_due
from core.messaging.models import OutboxMessage, OutboxStatus
from core.tenancy.models import Clinic
from core.tenancy.scope import clinic_scope
from tests.helpers import make_clinic, make_provider, make_service, make_staff, set_clinic_settings

NOW = datetime(2026, 3, 2, 18, 0, tzinfo=UTC)  # Monday 10:00 in Los Angeles
GUEST = {
    "legal_first_name": "Maya",
    "legal_last_name": "Lopez",
    "email": "maya@example.com",
    "phone": "(408) 555-0101",
    "date_of_birth": "1991-06-15",
}


@pytest.fixture
def clinic(app, inbox):
    _, port = inbox
    app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=port)
    channels.install(app)
    with time_machine.travel(NOW, tick=False), app.app_context():
        make_clinic("alpha", contact_email="hello@alpha.example.com")
        make_staff("alpha", "owner@alpha.example.com", Role.owner)
        provider = make_provider("alpha", "kim@alpha.example.com")
        service = make_service("alpha", "facial", provider_ids=[provider])
        set_clinic_settings(
            "alpha",
            bookings={
                "reminders": [{"hours_before": 48}, {"morning_of": "08:00"}],
                "reminder_channels": ["email", "sms"],
            },
        )
    return {"app": app, "provider": provider, "service": service, "inbox": inbox[0]}


def book(app, ctx, starts_at, guest=GUEST):
    from core.tenancy.models import Location

    with app.app_context():
        alpha = db.session.scalar(select(Clinic).where(Clinic.slug == "alpha"))
        with clinic_scope(alpha):
            location_id = db.session.scalar(select(Location.id))
    response = app.test_client().post(
        "/api/v1/clinics/alpha/bookings/online",
        json={
            "service_id": ctx["service"],
            "location_id": location_id,
            "starts_at": starts_at,
            "client": guest,
        },
    )
    assert response.status_code == 201, response.get_json()
    # The confirmation goes at once, with the visit's page and a calendar file; what these
    # tests follow is the reminders after it.
    assert run_jobs(app).sent == 1
    confirmation = message_from_string(ctx["inbox"].messages.pop()["data"], policy=default_policy)
    assert confirmation["Subject"].endswith("is booked")
    text, calendar = [part for part in confirmation.walk() if not part.is_multipart()]
    assert "/book/alpha/visit/" in text.get_content()
    assert calendar.get_filename() == "visit.ics"
    assert "BEGIN:VEVENT" in calendar.get_payload(decode=True).decode()
    return response.get_json()


def outbox(app):
    with app.app_context():
        alpha = db.session.scalar(select(Clinic).where(Clinic.slug == "alpha"))
        with clinic_scope(alpha):
            return [
                (m.channel, m.status.value, m.details.get("rule"), m.last_error)
                for m in db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))
            ]


def run_jobs(app):
    with app.app_context():
        return deliver_due()


def test_a_reminder_is_emailed_over_smtp_when_due_and_only_once(clinic, inbox):
    handler, _ = inbox
    app = clinic["app"]
    with time_machine.travel(NOW, tick=False) as traveller:
        book(app, clinic, "2026-03-06T14:00:00-08:00")
        assert run_jobs(app).sent == 0  # nothing is due yet
        traveller.move_to(datetime(2026, 3, 4, 22, 1, tzinfo=UTC))  # just past 48 hours before
        report = run_jobs(app)
        # Email goes; SMS is skipped: no consent to appointment texts on file.
        assert report.sent == 1 and report.skipped == 1
        assert run_jobs(app).sent == 0
    assert len(handler.messages) == 1
    message = handler.messages[0]
    assert message["to"] == "maya@example.com"
    assert "Subject: Reminder: your appointment at Alpha" in message["data"]
    # In the clinic's locale (Los Angeles: en_US): weekday, month, day, year.
    body = message_from_string(message["data"], policy=default_policy).get_content()
    assert "Friday, March 6, 2026 at 2:00 PM" in body
    assert ("sms", "skipped", "48h", "no consent to appointment texts") in outbox(app)


def test_sms_reminders_need_consent_and_never_say_reply_cancel(clinic, inbox):
    # COMPLIANCE.md: "never use 'reply CANCEL to cancel your appointment'"
    app = clinic["app"]
    sent: list[tuple[str, str]] = []

    class RecordingSms:
        def send(self, to, body):
            sent.append((to, body))
            return "SM1"

    app.extensions["clinic_saas.sms"] = RecordingSms()
    with time_machine.travel(NOW, tick=False) as traveller:
        body = book(app, clinic, "2026-03-06T14:00:00-08:00")
        client_id = body["booking"]["client_id"]
        with app.app_context():
            from core import clock
            from core.clients.models import Consent, ConsentKind, ConsentMethod

            alpha = db.session.scalar(select(Clinic).where(Clinic.slug == "alpha"))
            with clinic_scope(alpha):
                db.session.add(
                    Consent(
                        client_id=client_id,
                        kind=ConsentKind.transactional_sms,
                        text="Text me appointment reminders.",
                        text_version="1",
                        given_at=clock.now(),
                        method=ConsentMethod.electronic,
                        phone="+14085550101",
                    )
                )
                db.session.commit()
        traveller.move_to(datetime(2026, 3, 4, 22, 1, tzinfo=UTC))
        assert run_jobs(app).sent == 2
    assert [to for to, _ in sent] == ["+14085550101"]
    assert "STOP" in sent[0][1] and "CANCEL" not in sent[0][1].upper().replace("CANCELLATION", "")


def test_withdrawn_reminders_are_never_sent(clinic, inbox):
    handler, _ = inbox
    app = clinic["app"]
    with time_machine.travel(NOW, tick=False) as traveller:
        body = book(app, clinic, "2026-03-06T14:00:00-08:00")
        app.test_client().post(
            f"/api/v1/clinics/alpha/self-service/{body['self_service_token']}/cancellation"
        )
        traveller.move_to(datetime(2026, 3, 6, 20, 0, tzinfo=UTC))
        assert run_jobs(app).sent == 1  # the notice of the cancellation, not a reminder
    (notice,) = handler.messages
    assert "Subject: Your appointment was cancelled" in notice["data"]
    reminders = [status for _, status, rule, _ in outbox(app) if rule not in (None, "confirmed")]
    assert reminders and set(reminders) == {"withdrawn"}


def test_moving_a_booking_moves_its_reminders(clinic, inbox):
    handler, _ = inbox
    app = clinic["app"]
    with time_machine.travel(NOW, tick=False) as traveller:
        body = book(app, clinic, "2026-03-06T14:00:00-08:00")
        moved = app.test_client().post(
            f"/api/v1/clinics/alpha/self-service/{body['self_service_token']}/reschedule",
            json={"starts_at": "2026-03-09T10:00:00-07:00"},
        )
        assert moved.status_code == 200, moved.get_json()
        assert run_jobs(app).sent == 1  # the confirmation of the new time, at once
        traveller.move_to(datetime(2026, 3, 4, 22, 1, tzinfo=UTC))  # the old 48-hour mark
        assert run_jobs(app).sent == 0
        traveller.move_to(datetime(2026, 3, 9, 15, 1, tzinfo=UTC))  # 08:01 PDT on the new day
        assert run_jobs(app).sent == 2  # the new 48-hour and morning-of emails
    assert len(handler.messages) == 3
    confirmation = message_from_string(handler.messages[0]["data"], policy=default_policy)
    text = next(p for p in confirmation.walk() if p.get_content_type() == "text/plain")
    assert "Monday, March 9, 2026 at 10:00 AM" in text.get_content()


def test_two_workers_at_once_send_each_reminder_once(clinic, inbox):
    handler, _ = inbox
    app = clinic["app"]
    with time_machine.travel(NOW, tick=False) as traveller:
        for n in range(6):
            book(
                app,
                clinic,
                f"2026-03-06T{9 + n:02d}:00:00-08:00",
                guest={**GUEST, "email": f"c{n}@example.com"},
            )
        traveller.move_to(
            datetime(2026, 3, 6, 16, 1, tzinfo=UTC)
        )  # 08:01 on the day: every reminder is due
        with ThreadPoolExecutor(max_workers=3) as pool:
            reports = list(pool.map(lambda _: run_jobs(app), range(3)))
    assert sum(r.sent for r in reports) == 12  # 6 bookings x (48 hours before, morning of), email
    recipients = sorted(m["to"] for m in handler.messages)
    assert recipients == sorted([f"c{n}@example.com" for n in range(6)] * 2)


def test_a_worker_that_dies_after_claiming_loses_nothing(clinic, inbox):
    handler, _ = inbox
    app = clinic["app"]
    with time_machine.travel(NOW, tick=False) as traveller:
        book(app, clinic, "2026-03-06T14:00:00-08:00")
        traveller.move_to(datetime(2026, 3, 4, 22, 1, tzinfo=UTC))
        with app.app_context():
            alpha = db.session.scalar(select(Clinic).where(Clinic.slug == "alpha"))
            with clinic_scope(alpha):
                email_id = db.session.scalar(
                    select(OutboxMessage.id)
                    .where(
                        OutboxMessage.channel == "email",
                        OutboxMessage.status == OutboxStatus.pending,
                    )
                    .order_by(OutboxMessage.due_at)
                )
                from core import clock

                assert claim(email_id, clock.now())  # ... and the worker dies here, before sending
        assert run_jobs(app).sent == 0  # its lease still holds: nobody else sends it
        traveller.shift(6 * 60)  # the five-minute lease lapses
        assert run_jobs(app).sent == 1
        assert run_jobs(app).sent == 0
    assert len(handler.messages) == 1


def test_an_smtp_outage_is_retried_later_not_lost(clinic, inbox):
    handler, port = inbox
    app = clinic["app"]
    with time_machine.travel(NOW, tick=False) as traveller:
        book(app, clinic, "2026-03-06T14:00:00-08:00")
        app.config.update(SMTP_PORT=1)  # nothing listens there
        channels.install(app)
        traveller.move_to(datetime(2026, 3, 4, 22, 1, tzinfo=UTC))
        assert run_jobs(app).retried == 1
        app.config.update(SMTP_PORT=port)
        channels.install(app)
        assert run_jobs(app).sent == 0  # backing off
        traveller.shift(3 * 60)
        assert run_jobs(app).sent == 1
    assert len(handler.messages) == 1


def test_the_twilio_channel_posts_to_the_messages_api():
    received = []

    class FakeTwilio(BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers["Content-Length"])
            received.append(
                (
                    self.path,
                    parse_qs(self.rfile.read(length).decode()),
                    self.headers["Authorization"],
                )
            )
            body = b'{"sid": "SM123", "status": "queued"}'
            self.send_response(201)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), FakeTwilio)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        sms = channels.TwilioSms(
            "AC0123456789abcdef0123456789abcdef",
            "secret",
            "+14075550000",
            base_url=f"http://127.0.0.1:{server.server_port}",
        )
        assert sms.send("+14085550101", "Reminder: facial tomorrow at 2:00 PM") == "SM123"
    finally:
        server.shutdown()
    path, form, auth = received[0]
    assert path == "/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages.json"
    assert form == {
        "To": ["+14085550101"],
        "From": ["+14075550000"],
        "Body": ["Reminder: facial tomorrow at 2:00 PM"],
    }
    assert auth.startswith("Basic ")


def test_celery_delivers_due_reminders_through_redis(clinic, inbox):
    """The same tick, run by a real Celery worker with a Redis broker."""
    from celery.contrib.testing.worker import start_worker

    from core.jobs.celery import make_celery

    handler, _ = inbox
    app = clinic["app"]
    app.config.update(
        CELERY_BROKER_URL="redis://127.0.0.1:6379/15",
        CELERY_RESULT_BACKEND="redis://127.0.0.1:6379/15",
    )
    celery = make_celery(app)
    # A queue of this run's own: another run on the same Redis must not take its task.
    celery.conf.task_default_queue = f"clinic-saas-test-{uuid.uuid4().hex[:8]}"
    with time_machine.travel(NOW, tick=False):
        book(app, clinic, "2026-03-06T14:00:00-08:00")
    with (
        time_machine.travel(datetime(2026, 3, 4, 22, 1, tzinfo=UTC), tick=True),
        start_worker(celery, perform_ping_check=False, pool="solo"),
    ):
        result = celery.send_task("clinic_saas.tick").get(timeout=30)
    assert result["messages_sent"] == 1
    assert [m["to"] for m in handler.messages] == ["maya@example.com"]


def test_a_message_sent_again_keeps_its_message_id_so_the_receiver_sees_one_message(clinic, inbox):
    # The server takes the message but its answer is lost (here: it answers 451 after
    # keeping it), so the platform sends it again: the receiver must see the same message.
    handler, _ = inbox
    app = clinic["app"]
    app.config.update(MESSAGE_ID_DOMAIN="mail.alpha-clinic.example")
    original = handler.handle_DATA
    answers = iter(["451 4.3.0 answer lost"])

    async def keep_then_fail(server, session, envelope):
        await original(server, session, envelope)
        return next(answers, "250 OK")

    with time_machine.travel(NOW, tick=False) as traveller:
        book(app, clinic, "2026-03-06T14:00:00-08:00")
        handler.handle_DATA = keep_then_fail
        traveller.move_to(datetime(2026, 3, 4, 22, 1, tzinfo=UTC))
        assert run_jobs(app).retried == 1
        traveller.shift(3 * 60)
        assert run_jobs(app).sent == 1
    first, second = (message_from_string(m["data"]) for m in handler.messages)
    assert first["Subject"] == second["Subject"]
    assert first["Message-ID"] == second["Message-ID"]
    assert first["Message-ID"].endswith("@mail.alpha-clinic.example>")


def test_message_ids_are_the_same_for_one_message_and_differ_between_clinics():
    one = channels.make_message_id("mail.example", "reminder:12:48h", clinic_id=1)
    assert one == channels.make_message_id("mail.example", "reminder:12:48h", clinic_id=1)
    assert one != channels.make_message_id("mail.example", "reminder:12:48h", clinic_id=2)
    assert one.startswith("<") and one.endswith("@mail.example>") and " " not in one


def test_an_auckland_clinics_messages_write_its_dates_and_money_as_new_zealanders_do(app, inbox):
    from core.money import Money

    _, port = inbox
    app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=port)
    channels.install(app)
    with time_machine.travel(NOW, tick=False), app.app_context():
        make_clinic("kowhai", timezone="Pacific/Auckland", currency="NZD", country="NZ")
        provider = make_provider("kowhai", "ana@kowhai.example.com")
        service = make_service("kowhai", "facial", provider_ids=[provider])
        clinic = db.session.scalar(select(Clinic).where(Clinic.slug == "kowhai"))
        with clinic_scope(clinic):
            # Inside the clinic's scope an amount is written as its clients read it.
            assert Money(4000, "NZD").format() == "$40.00"
            assert Money(4000, "USD").format() == "US$40.00"
        assert Money(4000, "NZD").format() == "NZ$40.00"  # outside any clinic: en_US
    from core.tenancy.models import Location

    with app.app_context(), clinic_scope(clinic):
        location_id = db.session.scalar(select(Location.id))
    with time_machine.travel(NOW, tick=False):
        made = app.test_client().post(
            "/api/v1/clinics/kowhai/bookings/online",
            json={
                "service_id": service,
                "location_id": location_id,
                "starts_at": "2026-03-06T14:00:00+13:00",
                "client": GUEST,
            },
        )
        assert made.status_code == 201, made.get_json()
        assert run_jobs(app).sent == 1
    inbox_handler, _ = inbox
    confirmation = message_from_string(inbox_handler.messages[-1]["data"], policy=default_policy)
    text = next(p for p in confirmation.walk() if not p.is_multipart()).get_content()
    assert "Friday, 6 March 2026 at 2:00 pm" in text
