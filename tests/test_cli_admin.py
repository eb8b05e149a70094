"""The admin CLI's parsing and output with click's CliRunner against an in-memory REST fake;
real-process runs are in tests/test_server_cli.py."""

from __future__ import annotations

import gc
import json
import secrets
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from reelsync.cli import cli, main
from reelsync.cli.acl import Grant, parse_grant
from reelsync.cli.connection import Connection
from reelsync.cli.volume import parse_site_paths
from reelsync.errors import ValidationError

KEY = "k" * 20


class FakeRest:
    """Just enough of REST v1 for the admin commands: generic collections by id or code."""

    def __init__(self) -> None:
        self.rows: dict[str, list[dict[str, Any]]] = {
            "sites": [{"id": "1" * 24, "code": "hq", "name": "hq", "main": True}],
            "volumes": [],
            "queues": [],
            "users": [],
            "acls": [],
            "apikeys": [],
        }
        self.calls: list[tuple[str, str]] = []
        self.patches: list[dict[str, Any]] = []

    def _find(self, kind: str, ref: str) -> dict[str, Any] | None:
        for row in self.rows[kind]:
            if ref in (row.get("id"), row.get("code"), row.get("email")):
                return row
        return None

    def __call__(self, req: httpx.Request) -> httpx.Response:
        parts = req.url.path.removeprefix("/api/v1/").split("/")
        self.calls.append((req.method, req.url.path))
        if req.headers.get("authorization") != f"Bearer {KEY}":
            return httpx.Response(
                401, json={"error": {"code": "unauthenticated", "message": "bad key"}}
            )
        body = json.loads(req.content) if req.content else None
        kind = parts[0]
        if kind == "users" and len(parts) >= 3 and parts[2] == "apikeys":
            if req.method == "POST":
                row = {"id": secrets.token_hex(12), "user": parts[1], **body}
                self.rows["apikeys"].append(row)
                return httpx.Response(201, json={**row, "api_key": "rsk_new"})
            if req.method == "DELETE":
                return httpx.Response(204)
            return httpx.Response(200, json=self.rows["apikeys"])
        if len(parts) == 1:
            if req.method == "POST":
                ref = body.get("code") or body.get("email")
                if ref and self._find(kind, ref):
                    return httpx.Response(
                        409, json={"error": {"code": "conflict", "message": f"{ref} exists"}}
                    )
                row = {"id": secrets.token_hex(12), **body}
                self.rows[kind].append(row)
                return httpx.Response(201, json=row)
            rows = [
                r for r in self.rows[kind] if all(r.get(k) == v for k, v in req.url.params.items())
            ]
            return httpx.Response(200, json=rows)
        row = self._find(kind, parts[1])
        if row is None:
            return httpx.Response(
                404, json={"error": {"code": "not_found", "message": f"no {kind[:-1]} {parts[1]}"}}
            )
        if req.method == "DELETE":
            self.rows[kind].remove(row)
            return httpx.Response(204)
        if req.method == "PATCH":
            self.patches.append(body)
            row.update(body)
        return httpx.Response(200, json=row)


@pytest.fixture
def fake() -> FakeRest:
    return FakeRest()


@pytest.fixture
def run(fake: FakeRest, tmp_path: Path) -> Any:
    runner = CliRunner()
    env = {"HOME": str(tmp_path), "REELSYNC_API_KEY": KEY, "REELSYNC_URL": "https://hq.test:8443"}

    def invoke(*args: str) -> Any:
        conn = Connection(transport=httpx.MockTransport(fake))
        return runner.invoke(cli, list(args), obj=conn, env=env, catch_exceptions=False)

    return invoke


def test_volume_create_with_paths(run: Any, fake: FakeRest) -> None:
    result = run(
        "volume", "create", "projects", "--default",
        "--path", "hq=/mnt/projects", "--path", "london=/data/projects",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert fake.rows["volumes"][0] | {"id": ""} == {
        "id": "",
        "code": "projects",
        "default": True,
        "paths": {"hq": "/mnt/projects", "london": "/data/projects"},
    }
    assert "created volume projects" in result.stderr
    listed = run("volume", "list", "--json")
    assert json.loads(listed.stdout)[0]["code"] == "projects"
    table = run("volume", "list")
    assert "projects" in table.stdout
    assert "hq=/mnt/projects" in table.stdout


def test_queue_create_priority(run: Any, fake: FakeRest) -> None:
    assert run("queue", "create", "proj001", "--priority", "700").exit_code == 0
    assert fake.rows["queues"][0]["priority"] == 700
    bad = run("queue", "create", "x", "--priority", "1001")
    assert bad.exit_code == 2
    assert [q["code"] for q in fake.rows["queues"]] == ["proj001"]


def test_user_create_with_grant(run: Any, fake: FakeRest) -> None:
    run("volume", "create", "projects", "--path", "hq=/mnt/projects")
    result = run(
        "user", "create", "coordinator@acmepost.com", "--role", "employee", "--grant", "projects:rw"
    )
    assert result.exit_code == 0, result.output
    assert fake.rows["users"][0]["role"] == "employee"
    assert fake.rows["acls"][0] | {"id": ""} == {
        "id": "",
        "user": "coordinator@acmepost.com",
        "volume": "projects",
        "read": True,
        "write": True,
    }


def test_user_create_with_unknown_volume_changes_nothing(run: Any, fake: FakeRest) -> None:
    result = run("user", "create", "a@b.com", "--grant", "nope:rw")
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: no volume nope"
    assert fake.rows["users"] == []


def test_apikey_create_json_and_revoke(run: Any, fake: FakeRest) -> None:
    run("user", "create", "a@b.com")
    out = run("user", "apikey", "create", "a@b.com", "--json", "--description", "ci")
    assert json.loads(out.stdout)["api_key"] == "rsk_new"
    human = run("user", "apikey", "create", "a@b.com")
    assert human.stdout.strip() == "rsk_new"
    key_id = fake.rows["apikeys"][0]["id"]
    assert run("user", "apikey", "revoke", "a@b.com", key_id).exit_code == 0
    assert ("DELETE", f"/api/v1/users/a@b.com/apikeys/{key_id}") in fake.calls
    assert json.loads(run("user", "apikey", "list", "a@b.com", "--json").stdout)[0]["id"] == key_id


def test_show_and_delete_and_not_found(run: Any, fake: FakeRest) -> None:
    assert json.loads(run("site", "show", "hq", "--json").stdout)["main"] is True
    assert "hq" in run("site", "show", "hq").stdout
    assert run("site", "create", "london", "--name", "London").exit_code == 0
    assert run("site", "delete", "london").exit_code == 0
    gone = run("site", "show", "london")
    assert gone.exit_code == 2
    assert gone.stderr == "error: no site london\n"


def test_conflict_is_one_line(run: Any) -> None:
    run("queue", "create", "proj001")
    again = run("queue", "create", "proj001")
    assert again.exit_code == 2
    assert again.stderr == "error: proj001 exists\n"


def test_acl_grant_list_revoke(run: Any, fake: FakeRest) -> None:
    assert run("acl", "grant", "a@b.com", "projects/proj001:r").exit_code == 0
    rows = json.loads(run("acl", "list", "--json").stdout)
    assert (rows[0]["path"], rows[0]["write"]) == ("proj001", False)
    assert run("acl", "revoke", rows[0]["id"]).exit_code == 0


def test_empty_list_says_so(run: Any) -> None:
    result = run("queue", "list")
    assert result.exit_code == 0
    assert result.stderr == "no queues\n"


def test_parse_grant_and_paths() -> None:
    assert parse_grant("projects:rw") == Grant("projects", "", True, True)
    assert parse_grant("projects/a/b/:w") == Grant("projects", "a/b", False, True)
    assert parse_grant("projects") == Grant("projects", "", True, False)
    with pytest.raises(ValidationError):
        parse_grant("projects:x")
    with pytest.raises(ValidationError):
        parse_grant(":rw")
    assert parse_site_paths(("hq=/a", "ldn = /b")) == {"hq": "/a", "ldn": "/b"}
    for bad in (("hq",), ("=/a",), ("hq=/a", "hq=/b")):
        with pytest.raises(ValidationError):
            parse_site_paths(bad)


def test_usage_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["volume", "create"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err == "error: Missing argument 'CODE'. (see 'reelsync volume create --help')\n"
    with pytest.raises(SystemExit) as info:
        main(["nosuch"])
    assert info.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_bad_path_option_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    with pytest.raises(SystemExit) as info:
        main(["volume", "create", "projects", "--path", "hq"])
    assert info.value.code == 2
    assert capsys.readouterr().err == "error: --path must be SITE=PREFIX, got 'hq'\n"


def test_help_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["volume", "--help"])
    assert info.value.code == 0
    assert "create" in capsys.readouterr().out


def test_main_leaves_the_cyclic_collector_enabled(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """main pauses the collector for start-up only: it runs again however the command ended (help,
    a usage error before the root callback, an error inside the command)."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    for argv in (["volume", "--help"], ["nosuch"], ["volume", "create", "p", "--path", "hq"]):
        with pytest.raises(SystemExit):
            main(argv)
        assert gc.isenabled(), argv
    capsys.readouterr()


def test_update_commands_send_only_what_was_given(run: Any, fake: FakeRest) -> None:
    run("volume", "create", "jobs", "--path", "hq=/mnt/jobs", "--path", "rome=/r")
    done = run("volume", "update", "jobs", "--path", "paris=/p/jobs", "--remove-path", "rome")
    assert done.exit_code == 0, done.output
    assert fake.patches[-1] == {"paths": {"paris": "/p/jobs", "rome": None}}
    run("queue", "create", "proj001")
    assert run("queue", "update", "proj001", "--priority", "900", "--pause").exit_code == 0
    assert fake.patches[-1] == {"priority": 900, "paused": True}
    assert run("queue", "update", "proj001", "--resume", "--default").exit_code == 0
    assert fake.patches[-1] == {"paused": False, "default": True}
    assert run("site", "update", "hq", "--name", "Head office").exit_code == 0
    assert fake.patches[-1] == {"name": "Head office"}
    run("user", "create", "a@b.com")
    out = run("user", "update", "a@b.com", "--role", "admin", "--disable", "--json")
    assert fake.patches[-1] == {"role": "admin", "enabled": False}
    assert json.loads(out.stdout)["role"] == "admin"


def test_update_without_options_is_a_clear_mistake(run: Any, fake: FakeRest) -> None:
    run("queue", "create", "proj001")
    done = run("queue", "update", "proj001")
    assert done.exit_code == 2
    assert done.stderr == ("error: nothing to change: give at least one option (see --help)\n")
    assert fake.patches == []
    both = run("volume", "update", "x", "--path", "a=/a", "--remove-path", "a")
    assert both.exit_code == 2
    assert "both set and removed" in both.stderr


def test_a_group_without_a_command_shows_its_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["user"])
    assert info.value.code == 0
    out = capsys.readouterr()
    assert "apikey" in out.out
    assert out.err == ""


def test_global_url_option_wins(run: Any, fake: FakeRest) -> None:
    seen: list[str] = []

    def record(req: httpx.Request) -> httpx.Response:
        seen.append(str(req.url))
        return fake(req)

    conn = Connection(transport=httpx.MockTransport(record))
    env = {"REELSYNC_API_KEY": KEY, "REELSYNC_URL": "https://env.test:1", "HOME": "/nonexistent"}
    result = CliRunner().invoke(
        cli, ["--url", "https://flag.test:2", "site", "list", "--json"], obj=conn, env=env
    )
    assert result.exit_code == 0, result.output
    assert seen == ["https://flag.test:2/api/v1/sites"]
