"""The public names of core's modules, pinned: a change here is a change of contract for the
other parts (accsyn adapter, agent endpoints, scheduler, CLI)."""

from __future__ import annotations

import importlib

import pytest

PINNED = {
    "reelsync.domain.party": [
        "DEFAULT_VOLUME",
        "Location",
        "Party",
        "PartyKind",
        "PartyPath",
        "format_party_path",
        "join_path",
        "normalise_relative",
        "parse_party_path",
    ],
    "reelsync.domain.jobspec": [
        "JOB_KEYS",
        "JobSpec",
        "TASK_KEYS",
        "TaskSpec",
        "parse_job_spec",
        "parse_task_specs",
    ],
    "reelsync.domain.records": [
        "Acl",
        "Actor",
        "ApiKey",
        "AuditEvent",
        "EnrollmentToken",
        "Job",
        "Notes",
        "Page",
        "Queue",
        "Role",
        "Server",
        "ServerStatus",
        "Setting",
        "SettingScope",
        "Site",
        "Task",
        "User",
        "UserPreferences",
        "Volume",
        "Workspace",
    ],
    "reelsync.db": ["Database", "pool_size_for", "upgrade_to_head"],
    "reelsync.server.app": ["API_PREFIX", "create_app"],
    "reelsync.server.dependencies": [
        "CurrentActor",
        "DatabaseDep",
        "ServerConfigDep",
        "SubmitHookDep",
        "bearer_actor",
        "get_config",
        "get_database",
        "get_submit_hook",
    ],
    "reelsync.services.auth": [
        "WebSession",
        "authenticate",
        "close_session",
        "open_session",
        "require_admin",
        "require_role",
        "session_actor",
    ],
    "reelsync.services.bootstrap": ["InitResult", "init_workspace"],
    "reelsync.services.jobs": [
        "JobFilter",
        "MAX_OFFSET",
        "MAX_PAGE",
        "SubmitHook",
        "delete_job",
        "delete_user_and_jobs",
        "get_job",
        "get_job_row",
        "job_record",
        "list_jobs",
        "record_sizes",
        "replayed_job",
        "scan_job_rows",
        "scan_jobs",
        "set_job_status",
        "submit_job",
        "update_job",
    ],
    "reelsync.services.tasks": [
        "MAX_OFFSET",
        "MAX_PAGE",
        "add_tasks",
        "append_planned",
        "count_tasks",
        "get_task",
        "insert_planned",
        "list_tasks",
        "number_planned",
        "select_tasks",
        "task_record",
        "update_tasks",
    ],
    "reelsync.services.rollup": [
        "ENDED",
        "paused_by_holds",
        "refresh_job",
        "refresh_new_job",
        "task_counts",
    ],
    "reelsync.services.servers": [
        "AGENT_SECRET_KIND",
        "ENROLLMENT_TOKEN_KIND",
        "authenticate_server",
        "create_enrollment_token",
        "delete_server",
        "enroll_server",
        "get_server",
        "get_server_row",
        "list_servers",
        "require_online",
        "revoke_server",
        "revoked_server_ids",
        "server_record",
        "update_server",
    ],
    "reelsync.services.settings": [
        "ADMIN_ONLY_PREFIX",
        "delete_setting",
        "effective_settings",
        "get_setting",
        "list_settings",
        "parse_scope",
        "set_setting",
    ],
}


@pytest.mark.parametrize("module", sorted(PINNED))
def test_public_names_are_pinned_and_exist(module: str) -> None:
    mod = importlib.import_module(module)
    assert sorted(mod.__all__) == sorted(PINNED[module])
    for name in mod.__all__:
        assert hasattr(mod, name), f"{module}.{name} is in __all__ but missing"


@pytest.mark.parametrize(
    "name",
    [
        "acls",
        "apikeys",
        "credentials",
        "locations",
        "queues",
        "sites",
        "submission",
        "users",
        "volumes",
        "workspace",
    ],
)
def test_every_service_module_declares_existing_names(name: str) -> None:
    mod = importlib.import_module(f"reelsync.services.{name}")
    assert mod.__all__
    assert all(hasattr(mod, n) for n in mod.__all__)
