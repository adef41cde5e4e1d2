"""The local Stripe server of the demo and the tests: localstripe on loopback, behind a small proxy.

A development and test aid, never part of a production setup. localstripe (a
separate GPL program) runs in its own process from its own virtual environment;
nothing of it is imported here. ``LOCALSTRIPE_PYTHON`` names that environment's
interpreter, else ``.venv-localstripe`` in the project is used.

The proxy covers the gaps DESIGN.md lists:

- it records the ``Stripe-Account`` and ``Idempotency-Key`` of every call, so
  tests can assert them (localstripe ignores both);
- it replays the first response for a repeated idempotency key, as Stripe does;
- it drops parameters localstripe rejects (``setup_future_usage`` ...);
- it relays localstripe's webhooks to the app with the connected account the
  object was created on, signed again as Stripe signs them;
- it stands in for Stripe Connect onboarding, which localstripe lacks: it creates
  connected accounts (``POST /v1/accounts``, ``GET /v1/accounts/<id>``) and Account
  Links (``POST /v1/account_links``) whose URL is a page of its own
  (``/_onboarding/<link>``): visiting it completes the onboarding (the account can
  take charges, and an ``account.updated`` webhook goes to the app, signed) and
  redirects to the link's ``return_url``; a lapsed or used link redirects to its
  ``refresh_url``, as Stripe's hosted onboarding does;
- it stands in for disputes, which localstripe lacks and never sends events of:
  :meth:`LocalStripe.open_dispute` disputes a real payment made on localstripe,
  ``GET /v1/disputes/<id>`` reads it, ``POST /v1/disputes/<id>`` takes
  ``evidence[...]`` and ``submit`` as Stripe does (once, before ``due_by``; a
  repeated ``Idempotency-Key`` gets the first answer) and keeps what was submitted,
  and :meth:`LocalStripe.send_dispute_event` posts ``charge.dispute.*`` to the app,
  signed as Stripe signs it.

localstripe keeps its objects in ``/tmp/localstripe.pickle`` (its own choice), so
they outlive a restart; :meth:`LocalStripe.reset` empties it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any

import stripe

from core.config import PROJECT_ROOT

#: The secret the proxy signs relayed webhooks with: the app's STRIPE_WEBHOOK_SECRET.
WEBHOOK_SECRET = "whsec_test_local"
#: Parameters localstripe refuses although Stripe accepts them.
DROPPED = {"setup_future_usage", "description", "application_fee_amount", "cancellation_reason"}

LAUNCH = """
import sys
from aiohttp import web
from localstripe.server import app
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
"""


class LocalStripeError(RuntimeError):
    """localstripe could not be started."""


def free_port() -> int:
    """Return a loopback port that is free now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def localstripe_python() -> str | None:
    """Return the interpreter that has localstripe: ``LOCALSTRIPE_PYTHON``, or the project's own."""
    configured = os.environ.get("LOCALSTRIPE_PYTHON")
    if configured:
        return configured
    default = PROJECT_ROOT / ".venv-localstripe" / "bin" / "python"
    return str(default) if default.exists() else None


@dataclass
class Call:
    """One request the app made to Stripe, as the proxy saw it."""

    method: str
    path: str
    account: str | None
    idempotency_key: str | None
    params: dict[str, list[str]]
    #: The app's Request-Id for the call: the request (or job) that made it.
    request_id: str | None = None


@dataclass
class LocalStripe:
    """The proxy's address, what it recorded, and where webhooks go."""

    url: str
    upstream: str
    calls: list[Call] = field(default_factory=list)
    replies: dict[tuple[str, str], tuple[int, bytes]] = field(default_factory=dict)
    accounts: dict[str, str] = field(default_factory=dict)  # object id -> connected account
    webhook_target: str | None = None
    #: Webhooks relayed to the app: (event type, the app's answer).
    deliveries: list[tuple[str | None, int]] = field(default_factory=list)
    #: Answers to give instead of Stripe's, once each: (path start, status). The call still
    #: reaches Stripe, so the charge happens and only the answer is lost, as in an outage.
    faults: list[tuple[str, int]] = field(default_factory=list)
    #: Outages in force until cleared: path start -> ("hang", seconds) or ("drop", 0). A hung
    #: Stripe accepts the connection and never answers; a dropped one closes it unanswered.
    outages: dict[str, tuple[str, float]] = field(default_factory=dict)
    #: Connected accounts made through the proxy (localstripe has none), by id.
    connect_accounts: dict[str, dict[str, object]] = field(default_factory=dict)
    #: Account Links, by the id in their URL.
    account_links: dict[str, dict[str, object]] = field(default_factory=dict)
    #: Disputes (localstripe has none), by id.
    disputes: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Evidence submitted for each dispute, as it arrived: one entry per accepted submission.
    dispute_submissions: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def lapse_account_links(self) -> None:
        """Let every Account Link lapse, as one does a few minutes after it is made."""
        with self.lock:
            for link in self.account_links.values():
                link["expires_at"] = 0

    @property
    def stripe_js_url(self) -> str:
        """localstripe's stand-in for Stripe.js: the browser talks to localstripe directly."""
        return self.upstream + "/js.stripe.com/v3/"

    def hang(self, path_start: str, seconds: float = 120) -> None:
        """Accept calls on this path and answer nothing for ``seconds``, then close."""
        with self.lock:
            self.outages[path_start] = ("hang", seconds)

    def drop(self, path_start: str) -> None:
        """Close each call on this path without an answer."""
        with self.lock:
            self.outages[path_start] = ("drop", 0)

    def restore(self) -> None:
        """End every outage: Stripe answers again."""
        with self.lock:
            self.outages.clear()

    def fail_next(self, path_start: str, status: int = 500) -> None:
        """Lose Stripe's next answer on this path: the client gets ``status`` instead."""
        with self.lock:
            self.faults.append((path_start, status))

    def calls_to(self, path_start: str, method: str = "POST") -> list[Call]:
        """Return the recorded calls whose path starts with ``path_start``."""
        return [c for c in self.calls if c.method == method and c.path.startswith(path_start)]

    def reset(self) -> None:
        """Forget every call, outage and reply, and empty localstripe."""
        with self.lock:
            self.calls.clear()
            self.outages.clear()
            self.replies.clear()
            self.accounts.clear()
            self.deliveries.clear()
            self.faults.clear()
            self.connect_accounts.clear()
            self.account_links.clear()
            self.disputes.clear()
            self.dispute_submissions.clear()
        urllib.request.urlopen(
            urllib.request.Request(self.upstream + "/_config/data", method="DELETE")
        )

    def open_dispute(
        self,
        payment_intent: str,
        *,
        account: str,
        reason: str = "fraudulent",
        due_in: timedelta = timedelta(days=7),
    ) -> dict[str, Any]:
        """Dispute a payment made on localstripe, as a client's bank would; return the dispute."""
        read = urllib.request.Request(
            f"{self.upstream}/v1/payment_intents/{payment_intent}",
            headers={"Authorization": "Bearer sk_test_local"},
        )
        with urllib.request.urlopen(read) as response:
            intent = json.loads(response.read())
        charges = (intent.get("charges") or {}).get("data") or []
        charge = intent.get("latest_charge") or (charges[-1]["id"] if charges else None)
        now = int(time.time())
        dispute: dict[str, Any] = {
            "id": "dp_" + os.urandom(8).hex(),
            "object": "dispute",
            "amount": intent["amount"],
            "currency": intent["currency"],
            "charge": charge,
            "payment_intent": payment_intent,
            "reason": reason,
            "status": "needs_response",
            "created": now,
            "livemode": False,
            "metadata": {},
            "evidence": {},
            "evidence_details": {
                "due_by": now + int(due_in.total_seconds()),
                "has_evidence": False,
                "past_due": False,
                "submission_count": 0,
            },
        }
        with self.lock:
            self.disputes[dispute["id"]] = dispute
            self.accounts[dispute["id"]] = account
        return dict(dispute)

    def close_dispute(self, dispute_id: str, status: str) -> dict[str, Any]:
        """End a dispute as the card network decided: ``won`` or ``lost``."""
        with self.lock:
            self.disputes[dispute_id]["status"] = status
            return dict(self.disputes[dispute_id])

    def send_dispute_event(
        self, kind: str, dispute_id: str, event_id: str | None = None
    ) -> tuple[int, bytes]:
        """Post ``charge.dispute.<kind>`` about the dispute, as it stands, to the app; its answer."""
        with self.lock:
            dispute = json.loads(json.dumps(self.disputes[dispute_id]))
            account = self.accounts.get(dispute_id)
            target = self.webhook_target
        if not target:
            raise LocalStripeError("no app to send the event to (webhook_target is unset)")
        payload = json.dumps(
            {
                "id": event_id or "evt_" + os.urandom(8).hex(),
                "object": "event",
                "type": f"charge.dispute.{kind}",
                "account": account,
                "created": int(time.time()),
                "data": {"object": dispute},
            }
        )
        request = urllib.request.Request(
            target,
            data=payload.encode(),
            method="POST",
            headers={"Content-Type": "application/json", "Stripe-Signature": sign(payload)},
        )
        try:
            with urllib.request.urlopen(request) as response:
                answer = (response.status, response.read())
        except urllib.error.HTTPError as error:
            answer = (error.code, error.read())
        with self.lock:
            self.deliveries.append((f"charge.dispute.{kind}", answer[0]))
        return answer


def _handler(state: LocalStripe) -> type[BaseHTTPRequestHandler]:
    class Proxy(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # quiet
            pass

        def _forward(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if self.path == "/_relay":
                return self._relay(body)
            params = urllib.parse.parse_qs(body.decode(), keep_blank_values=True)
            if self.path.startswith(("/v1/accounts", "/v1/account_links", "/_onboarding/")):
                with state.lock:
                    state.calls.append(
                        Call(
                            method,
                            self.path.split("?")[0],
                            self.headers.get("Stripe-Account"),
                            self.headers.get("Idempotency-Key"),
                            params,
                        )
                    )
                return self._connect(method, params)
            account = self.headers.get("Stripe-Account")
            key = self.headers.get("Idempotency-Key")
            path = self.path.split("?")[0]
            if path.startswith("/v1/disputes/"):
                with state.lock:
                    state.calls.append(Call(method, path, account, key, params))
                return self._dispute(method, path, key, params)
            with state.lock:
                state.calls.append(
                    Call(method, path, account, key, params, self.headers.get("Request-Id"))
                )
                outage = next((o for p, o in state.outages.items() if path.startswith(p)), None)
                replay = state.replies.get((path, key)) if key else None
            if outage is not None:
                kind, seconds = outage
                deadline = time.monotonic() + seconds
                while kind == "hang" and time.monotonic() < deadline and state.outages:
                    time.sleep(0.05)  # until the outage is over or its time is up
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return None
            if replay is not None:
                with state.lock:
                    fault = next((f for f in state.faults if path.startswith(f[0])), None)
                    if fault is not None and method == "POST":
                        state.faults.remove(fault)
                        error = {
                            "error": {"type": "api_error", "message": "Stripe is having trouble."}
                        }
                        return self._reply(fault[1], json.dumps(error).encode())
                return self._reply(*replay)
            kept = {k: v for k, v in params.items() if k.split("[")[0] not in DROPPED}
            request = urllib.request.Request(
                state.upstream + self.path,
                data=urllib.parse.urlencode(kept, doseq=True).encode()
                if method == "POST"
                else None,
                method=method,
                headers={"Authorization": self.headers.get("Authorization", "")},
            )
            try:
                with urllib.request.urlopen(request) as response:
                    status, payload = response.status, response.read()
            except urllib.error.HTTPError as error:
                status, payload = error.code, error.read()
            with state.lock:
                if key and status < 500:
                    state.replies[(path, key)] = (status, payload)
                if account and status < 400:
                    found = json.loads(payload).get("id")
                    if found:
                        state.accounts[found] = account
                fault = next((f for f in state.faults if path.startswith(f[0])), None)
                if fault is not None and method == "POST":
                    state.faults.remove(fault)
            if fault is not None and method == "POST":
                lost = {"error": {"type": "api_error", "message": "Stripe is having trouble."}}
                return self._reply(fault[1], json.dumps(lost).encode())
            self._reply(status, payload)

        def _connect(self, method: str, params: dict[str, list[str]]) -> None:
            """Stripe Connect's accounts and onboarding, which localstripe lacks."""
            path = self.path.split("?")[0]
            key = self.headers.get("Idempotency-Key")
            first = {k: v[0] for k, v in params.items()}
            with state.lock:
                replay = state.replies.get((path, key)) if key else None
            if replay is not None:
                return self._reply(*replay)
            now = int(time.time())
            if method == "POST" and path == "/v1/accounts":
                account: dict[str, object] = {
                    "id": "acct_" + os.urandom(8).hex(),
                    "object": "account",
                    "type": first.get("type", "standard"),
                    "country": first.get("country"),
                    "email": first.get("email"),
                    "charges_enabled": False,
                    "details_submitted": False,
                    "created": now,
                }
                with state.lock:
                    state.connect_accounts[str(account["id"])] = account
                return self._answer(path, key, 200, account)
            if method == "GET" and path.startswith("/v1/accounts/"):
                found = state.connect_accounts.get(path.rsplit("/", 1)[-1])
                if found is None:
                    missing = {
                        "error": {"type": "invalid_request_error", "message": "No such account"}
                    }
                    return self._reply(404, json.dumps(missing).encode())
                return self._reply(200, json.dumps(found).encode())
            if method == "POST" and path == "/v1/account_links":
                if first.get("account") not in state.connect_accounts:
                    missing = {
                        "error": {"type": "invalid_request_error", "message": "No such account"}
                    }
                    return self._reply(400, json.dumps(missing).encode())
                link_id = os.urandom(8).hex()
                link = {
                    "object": "account_link",
                    "created": now,
                    "expires_at": now + 300,
                    "url": f"{state.url}/_onboarding/{link_id}",
                }
                with state.lock:
                    state.account_links[link_id] = {
                        **link,
                        "account": first["account"],
                        "return_url": first.get("return_url"),
                        "refresh_url": first.get("refresh_url"),
                        "used": False,
                    }
                return self._answer(path, key, 200, link)
            if method == "GET" and path.startswith("/_onboarding/"):
                return self._onboard(path.rsplit("/", 1)[-1], now)
            self._reply(404, b'{"error": {"message": "not emulated"}}')

        def _dispute(
            self, method: str, path: str, key: str | None, params: dict[str, list[str]]
        ) -> None:
            """Stripe's dispute API: read one; add evidence and submit it, once, before it is due."""
            with state.lock:
                replay = state.replies.get((path, key)) if key and method == "POST" else None
                found = state.disputes.get(path.rsplit("/", 1)[-1])
            if replay is not None:
                return self._unless_lost(path, *replay)

            def refuse(status: int, message: str, code: str) -> None:
                error: dict[str, object] = {
                    "error": {"type": "invalid_request_error", "message": message, "code": code}
                }
                return self._answer(path, key, status, error)

            if found is None:
                return refuse(404, "No such dispute", "resource_missing")
            if method == "GET":
                with state.lock:
                    payload = json.dumps(found).encode()
                return self._reply(200, payload)
            evidence = {
                k[len("evidence[") : -1]: v[0]
                for k, v in params.items()
                if k.startswith("evidence[") and k.endswith("]")
            }
            submit = params.get("submit", ["false"])[0] == "true"
            with state.lock:
                details = found["evidence_details"]
                if found["status"] not in ("needs_response", "warning_needs_response"):
                    answer = (
                        400,
                        "This dispute is no longer accepting evidence.",
                        "dispute_closed",
                    )
                elif details["due_by"] <= time.time():
                    details["past_due"] = True
                    answer = (400, "The deadline for submitting evidence has passed.", "past_due")
                else:
                    found["evidence"] = {**found["evidence"], **evidence}
                    if submit:
                        found["status"] = "under_review"
                        details["submission_count"] += 1
                        details["has_evidence"] = True
                        state.dispute_submissions.setdefault(found["id"], []).append(evidence)
                    answer = None
                body = dict(found)
            if answer is not None:
                return refuse(*answer)
            payload = json.dumps(body).encode()
            if key:
                with state.lock:
                    state.replies[(path, key)] = (200, payload)
            return self._unless_lost(path, 200, payload)

        def _unless_lost(self, path: str, status: int, payload: bytes) -> None:
            """Answer, unless a fault asks to lose the answer: the change is made all the same."""
            with state.lock:
                fault = next((f for f in state.faults if path.startswith(f[0])), None)
                if fault is not None:
                    state.faults.remove(fault)
            if fault is not None:
                lost = {"error": {"type": "api_error", "message": "Stripe is having trouble."}}
                return self._reply(fault[1], json.dumps(lost).encode())
            return self._reply(status, payload)

        def _answer(self, path: str, key: str | None, status: int, body: dict[str, object]) -> None:
            payload = json.dumps(body).encode()
            if key:
                with state.lock:
                    state.replies[(path, key)] = (status, payload)
            self._reply(status, payload)

        def _onboard(self, link_id: str, now: int) -> None:
            """Stripe's hosted onboarding, completed at once: the account can take charges."""
            with state.lock:
                link = state.account_links.get(link_id)
                if link is None:
                    return self._reply(404, b'{"error": {"message": "No such link"}}')
                if link["used"] or int(str(link["expires_at"])) <= now:
                    return self._redirect(str(link["refresh_url"]))
                link["used"] = True
                account = state.connect_accounts[str(link["account"])]
                account.update(charges_enabled=True, details_submitted=True)
                target = state.webhook_target
            event = {
                "id": "evt_" + os.urandom(8).hex(),
                "object": "event",
                "type": "account.updated",
                "created": now,
                "account": account["id"],
                "data": {"object": account},
            }
            if target:
                payload = json.dumps(event)
                request = urllib.request.Request(
                    target,
                    data=payload.encode(),
                    method="POST",
                    headers={"Content-Type": "application/json", "Stripe-Signature": sign(payload)},
                )
                try:
                    with urllib.request.urlopen(request) as response:
                        status = response.status
                except urllib.error.HTTPError as error:
                    status = error.code
                with state.lock:
                    state.deliveries.append(("account.updated", status))
            self._redirect(str(link["return_url"]))

        def _redirect(self, location: str) -> None:
            self.send_response(302)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _relay(self, body: bytes) -> None:
            event = json.loads(body)
            obj = event.get("data", {}).get("object", {})
            with state.lock:
                # Objects localstripe makes itself (a subscription's invoices) belong to the
                # account of the customer or subscription they were made for.
                event["account"] = next(
                    (
                        state.accounts[ref]
                        for ref in (obj.get("id"), obj.get("subscription"), obj.get("customer"))
                        if isinstance(ref, str) and ref in state.accounts
                    ),
                    None,
                )
            payload = json.dumps(event)
            header = sign(payload)
            target = state.webhook_target
            if target:
                request = urllib.request.Request(
                    target,
                    data=payload.encode(),
                    method="POST",
                    headers={"Content-Type": "application/json", "Stripe-Signature": header},
                )
                try:
                    with urllib.request.urlopen(request) as response:
                        status = response.status
                except urllib.error.HTTPError as error:
                    status = error.code
                with state.lock:
                    state.deliveries.append((event.get("type"), status))
            self._reply(200, b"{}")

        def _reply(self, status: int, payload: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:
            self._forward("GET")

        def do_POST(self) -> None:
            self._forward("POST")

        def do_DELETE(self) -> None:
            self._forward("DELETE")

    return Proxy


def sign(payload: str, secret: str = WEBHOOK_SECRET, at: int | None = None) -> str:
    """Return a ``Stripe-Signature`` header for ``payload``, made as Stripe makes it."""
    at = int(time.time()) if at is None else at
    signature = stripe.WebhookSignature._compute_signature(f"{at}.{payload}", secret)
    return f"t={at},v1={signature}"


def _wait_until_up(upstream: str, process: subprocess.Popen[bytes]) -> None:
    for _ in range(100):
        if process.poll() is not None:
            raise LocalStripeError(f"localstripe exited at start (status {process.returncode})")
        try:
            urllib.request.urlopen(upstream + "/v1/customers", timeout=1)
            return
        except urllib.error.HTTPError:
            return  # it answers (401 without a key): it is up
        except OSError:
            time.sleep(0.1)
    raise LocalStripeError("localstripe did not start")


@contextmanager
def running(
    python: str, workdir: Path, *, output: IO[bytes] | int = subprocess.DEVNULL
) -> Iterator[LocalStripe]:
    """Start localstripe with ``python`` and the proxy in front of it, on free loopback ports.

    ``output`` takes localstripe's own output (dropped by default). Both stop when the
    block ends. Raises :class:`LocalStripeError` when localstripe does not come up.
    """
    port = free_port()
    # Its own session: a Ctrl-C at the terminal reaches the demo (or pytest) alone, which
    # stops the app first and localstripe after it, rather than localstripe dying under it.
    process = subprocess.Popen(
        [python, "-c", LAUNCH, str(port)],
        cwd=workdir,
        stdout=output,
        stderr=output,
        start_new_session=True,
    )
    upstream = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(upstream, process)
    except LocalStripeError:
        process.kill()
        process.wait(timeout=10)
        raise
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state := LocalStripe("", upstream)))
    state.url = f"http://127.0.0.1:{proxy.server_address[1]}"
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        # localstripe delivers every event to the proxy, which relays it to the app.
        urllib.request.urlopen(
            urllib.request.Request(
                upstream + "/_config/webhooks/app",
                data=urllib.parse.urlencode(
                    {"url": state.url + "/_relay", "secret": WEBHOOK_SECRET}
                ).encode(),
                method="POST",
            )
        )
        yield state
    finally:
        proxy.shutdown()
        proxy.server_close()
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
