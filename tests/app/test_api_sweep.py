"""Generated requests for every operation in the OpenAPI document: never a 5xx, every 4xx a problem.

schemathesis builds requests from the document itself (valid ones and ones
that break its schemas), so a new route is swept the day it is documented. The
clinic in the path is a real one and the caller its owner, so the requests get
past the access guard into the handlers; the number of examples per operation
is bounded to keep the default run short (``CLINIC_SAAS_SWEEP_EXAMPLES``).
"""

from __future__ import annotations

import os
from collections import Counter

import schemathesis
from hypothesis import HealthCheck, given, settings

from core.errors import PROBLEM_MEDIA_TYPE
from tests.helpers import issue_token, make_clinic, make_provider, make_service, make_staff

EXAMPLES = int(os.environ.get("CLINIC_SAAS_SWEEP_EXAMPLES", "6"))


def test_no_generated_request_gets_a_5xx_and_every_4xx_is_a_problem(app, capsys):
    with app.app_context():
        make_clinic("alpha", stripe_account_id="acct_alpha")
        provider = make_provider("alpha", "kim@alpha.example.com")
        make_service("alpha", "facial", provider_ids=[provider])
    owners = iter(range(1_000_000))

    def fresh_owner() -> str:
        # Generated requests revoke tokens, demote and deactivate staff: each one is made by
        # an owner of its own, so the next is not refused for what the last one did.
        email = f"owner{next(owners)}@alpha.example.com"
        with app.app_context():
            make_staff("alpha", email)
        return issue_token(app, "alpha", email)

    schema = schemathesis.openapi.from_dict(app.test_client().get("/api/openapi.json").get_json())

    statuses: Counter[int] = Counter()
    wrong: list[str] = []
    operations = 0

    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def ask(case) -> None:
            if case.path_parameters and "clinic_slug" in case.path_parameters:
                case.path_parameters["clinic_slug"] = "alpha"
            response = case.call(app=app, headers={"Authorization": f"Bearer {fresh_owner()}"})
            status = response.status_code
            statuses[status] += 1
            where = f"{case.method} {case.operation.path} -> {status}"
            if status >= 500:
                wrong.append(f"{where}: {response.text[:300]}")
            elif status >= 400:
                media = response.headers.get("content-type", [""])
                media = media[0] if isinstance(media, list) else media
                body = response.json() if media.startswith(PROBLEM_MEDIA_TYPE) else {}
                if body.get("status") != status:
                    wrong.append(f"{where}: not a problem document ({media})")

        ask()

    with capsys.disabled():
        print(
            f"\nAPI sweep: {operations} operations, {sum(statuses.values())} requests, "
            f"statuses {dict(sorted(statuses.items()))}"
        )
    assert operations > 100
    assert wrong == []
