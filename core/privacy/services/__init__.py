"""Privacy workflows: requests and their deadlines, access exports, deletion under retention holds."""

# The core runs the workflow; the clinic's jurisdiction plugins give the
# rules. Where several apply, the earliest deadline and the longest minimum
# retention win (``combined_deadline``, ``deletion_plan``).

from core.privacy.services.access import access_export, readable
from core.privacy.services.consents import MARKETING_CONSENTS
from core.privacy.services.deletion import (
    DeletionPlan,
    PlanItem,
    delete_client_data,
    deletion_plan,
    purge_expired_holds,
)
from core.privacy.services.incidents import breaches, mark_notice_sent, record_breach
from core.privacy.services.opt_outs import carry_gpc, opt_out_reviews, opted_out_of_sale
from core.privacy.services.processors import (
    BILLED_MEMBERSHIP,
    PROVIDER_NOTE,
    UNPAID_FEE,
    ProcessorItem,
    carry_out_notices,
    mark_processor_notice_sent,
    processors_holding,
    recipient_label,
)
from core.privacy.services.requests import complete, deny, extend, queue, request_of, submit, verify
from core.privacy.services.rules import (
    REPRESENTATIVE_AGE,
    CombinedDeadline,
    alert_nearing_deadlines,
    combined_deadline,
    representative_age,
    rights_offered,
)
from core.privacy.services.transfers import add_data_recipient, data_recipients, transfer

__all__ = [
    "BILLED_MEMBERSHIP",
    "MARKETING_CONSENTS",
    "PROVIDER_NOTE",
    "REPRESENTATIVE_AGE",
    "UNPAID_FEE",
    "CombinedDeadline",
    "DeletionPlan",
    "PlanItem",
    "ProcessorItem",
    "access_export",
    "add_data_recipient",
    "alert_nearing_deadlines",
    "breaches",
    "carry_gpc",
    "carry_out_notices",
    "combined_deadline",
    "complete",
    "data_recipients",
    "delete_client_data",
    "deletion_plan",
    "deny",
    "extend",
    "mark_notice_sent",
    "mark_processor_notice_sent",
    "opt_out_reviews",
    "opted_out_of_sale",
    "processors_holding",
    "purge_expired_holds",
    "queue",
    "readable",
    "recipient_label",
    "record_breach",
    "representative_age",
    "request_of",
    "rights_offered",
    "submit",
    "transfer",
    "verify",
]
