"""The public names of reelsync.notify (and the webhook services), pinned: the scheduler and the
server process call these."""

from __future__ import annotations

import importlib

import pytest

PINNED = {
    "reelsync.notify.mailer": [
        "Mailer", "MemoryMailer", "OutgoingMail", "SmtpMailer", "build_email",
    ],
    "reelsync.notify.summary": [
        "MAX_FAILURES_LISTED", "FailedFile", "JobSummary", "compose_job_mail", "format_bytes",
        "format_duration",
    ],
    "reelsync.notify.webhook": [
        "DELIVERY_HEADER", "EVENT_HEADER", "SIGNATURE_HEADER", "TIMESTAMP_HEADER", "WEBHOOK_EVENTS",
        "HttpWebhookSender", "MemoryWebhookSender", "SignedRequest", "WebhookSender",
        "parse_events", "sign", "sign_request", "verify_signature",
    ],
    "reelsync.notify.hooks": [
        "DEFAULT_HOOK_TIMEOUT_S", "HOOK_NAMES", "HOOK_SETTING_KEYS", "HOOK_TIMEOUT_SETTING",
        "INPUT_PLACEHOLDER", "HookResult", "check_pre_submit", "parse_hook_timeout", "run_hook",
    ],
    "reelsync.notify.presubmit": ["PreSubmitHook"],
    "reelsync.notify.recipients": [
        "OPT_OUT_KEY", "USER_SCOPE", "is_true", "job_recipients", "job_settings", "opted_out",
        "set_opt_out", "split_addresses",
    ],
    "reelsync.notify.outbox": [
        "FINISH_EVENTS", "KIND_HOOK", "KIND_MAIL", "KIND_WEBHOOK", "enqueue_job_finished",
        "enqueue_job_submitted", "hook_command", "job_document",
    ],
    "reelsync.notify.capture": ["JobEventCapture", "install_job_events"],
    "reelsync.notify.dispatcher": ["Dispatcher", "DispatcherPolicy", "job_url"],
    "reelsync.notify.service": ["Notifier", "mailer_from_config"],
    "reelsync.services.webhooks": [
        "WEBHOOK_EVENTS", "WebhookRecord", "create_webhook", "delete_webhook", "get_webhook",
        "list_webhooks", "parse_events", "update_webhook",
    ],
}  # fmt: skip


@pytest.mark.parametrize("module", sorted(PINNED))
def test_public_names_are_pinned_and_exist(module: str) -> None:
    mod = importlib.import_module(module)
    assert sorted(mod.__all__) == sorted(PINNED[module])
    for name in mod.__all__:
        assert hasattr(mod, name), f"{module}.{name} is in __all__ but missing"
