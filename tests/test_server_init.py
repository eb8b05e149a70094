"""`reelsync server init` as a real child process: what it makes, init twice, user mistakes."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from cryptography import x509

from support.servers import child_env, free_port, init_server, run_cli

pytestmark = pytest.mark.slow


def test_init_makes_a_private_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "data"
    info = init_server(data, tmp_path, port=free_port())
    assert {"api_key", "url", "workspace", "admin", "data_dir"} <= set(info)
    assert info["url"].startswith("https://127.0.0.1:")
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    for key in ("tls/ca.key", "tls/server.key", "server.toml"):
        assert stat.S_IMODE((data / key).stat().st_mode) == 0o600, key
    assert (data / "tls" / "ca.crt").is_file()


def test_init_twice_is_one_clear_error(tmp_path: Path) -> None:
    data = tmp_path / "data"
    init_server(data, tmp_path, port=free_port())
    before = sorted(p.name for p in data.iterdir())
    again = run_cli(
        ["server", "init", "--data-dir", str(data), "--workspace", "x", "--admin", "a@x.test"],
        child_env(tmp_path),
    )
    assert again.returncode == 78
    assert again.stderr.startswith(f"error: {data} is already initialised")
    assert again.stderr.count("\n") == 1
    assert sorted(p.name for p in data.iterdir()) == before


def test_init_human_output_prints_the_key_once(tmp_path: Path) -> None:
    done = run_cli(
        ["server", "init", "--data-dir", str(tmp_path / "d"), "--workspace", "acme",
         "--admin", "boss@acme.test"],
        child_env(tmp_path),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    key = done.stdout.strip()
    assert key
    assert "\n" not in key
    assert key not in done.stderr
    assert "reelsync server run --data-dir" in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--listen", "nohost"], "error: --listen must be HOST:PORT, got 'nohost'"),
        (["--workspace", ""], "error:"),
        (["--admin", "not-an-email"], "error:"),
    ],
)
def test_init_mistakes_change_nothing(tmp_path: Path, args: list[str], message: str) -> None:
    base = {"--workspace": "acme", "--admin": "a@acme.test"}
    merged = dict(base)
    merged.update(dict(zip(args[::2], args[1::2], strict=True)))
    flat = [x for kv in merged.items() for x in kv]
    data = tmp_path / "data"
    done = run_cli(["server", "init", "--data-dir", str(data), *flat], child_env(tmp_path))
    assert done.returncode != 0
    assert done.stderr.startswith(message)
    assert done.stderr.count("\n") == 1
    assert "Traceback" not in done.stderr
    assert not data.exists()


def test_init_with_an_unreachable_database_changes_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nope"
    done = run_cli(
        ["server", "init", "--data-dir", str(data), "--workspace", "acme",
         "--admin", "a@acme.test", "--database-url", url],
        child_env(tmp_path),
    )  # fmt: skip
    assert done.returncode == 75, done.stderr
    assert done.stderr.startswith("error: cannot reach the database")
    assert done.stderr.count("\n") == 1
    assert not data.exists()


def test_run_with_an_unreachable_database_is_one_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    init_server(data, tmp_path, port=free_port())
    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nope"
    done = run_cli(
        ["server", "run", "--data-dir", str(data)],
        child_env(tmp_path, {"REELSYNC_DATABASE_URL": url}),
    )
    assert done.returncode == 75, done.stderr
    assert done.stderr.startswith("error: cannot reach the database")
    assert done.stderr.count("\n") == 1


def test_public_url_goes_into_config_and_certificate(tmp_path: Path) -> None:
    data = tmp_path / "data"
    done = run_cli(
        ["server", "init", "--data-dir", str(data), "--workspace", "acme", "--admin",
         "a@acme.test", "--public-url", "https://hq.acmepost.test:8443/", "--json"],
        child_env(tmp_path),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["url"] == "https://hq.acmepost.test:8443"
    cert = x509.load_pem_x509_certificate((data / "tls" / "server.crt").read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "hq.acmepost.test" in san.get_values_for_type(x509.DNSName)
    bad = run_cli(
        ["server", "init", "--data-dir", str(tmp_path / "d2"), "--workspace", "acme",
         "--admin", "a@acme.test", "--public-url", "hq:8443"],
        child_env(tmp_path),
    )  # fmt: skip
    assert bad.returncode == 78
    assert bad.stderr == "error: --public-url must be https://HOST[:PORT], got 'hq:8443'\n"
    assert not (tmp_path / "d2").exists()


@pytest.mark.postgres
def test_init_replica_copies_the_keys_and_issues_its_own_certificate(tmp_path: Path) -> None:
    from support.postgres import fresh_database

    with fresh_database() as url:
        first = tmp_path / "first"
        init_server(first, tmp_path, port=free_port(), database_url=url)
        assert not (first / "tls" / "ticket.key").exists()  # made by the first `server run`
        replica = tmp_path / "replica"
        done = run_cli(
            ["server", "init-replica", "--from", str(first), "--data-dir", str(replica),
             "--listen", "0.0.0.0:9443", "--public-url", "https://cp2.acme.test:9443", "--json"],
            child_env(tmp_path),
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        info = json.loads(done.stdout)
        assert info["url"] == "https://cp2.acme.test:9443"
        assert stat.S_IMODE(replica.stat().st_mode) == 0o700
        for name in ("ca.crt", "ca.key", "ticket.key"):  # the ticket key is made once, shared
            assert (replica / "tls" / name).read_bytes() == (first / "tls" / name).read_bytes()
        # web UI sessions signed at one replica are good at the other
        assert (replica / "ui-session.key").read_bytes() == (first / "ui-session.key").read_bytes()
        for key in (
            "tls/ca.key",
            "tls/ticket.key",
            "tls/server.key",
            "server.toml",
            "ui-session.key",
        ):
            assert stat.S_IMODE((replica / key).stat().st_mode) == 0o600, key
        assert (replica / "tls" / "server.key").read_bytes() != (
            first / "tls" / "server.key"
        ).read_bytes()
        cert = x509.load_pem_x509_certificate((replica / "tls" / "server.crt").read_bytes())
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert "cp2.acme.test" in san.get_values_for_type(x509.DNSName)
        toml = (replica / "server.toml").read_text()
        assert url.split("@")[-1] in toml
        assert 'listen = "0.0.0.0:9443"' in toml
        again = run_cli(
            ["server", "init-replica", "--from", str(first), "--data-dir", str(replica)],
            child_env(tmp_path),
        )
        assert again.returncode == 78
        assert again.stderr.startswith(f"error: {replica} is already initialised")


def test_init_replica_mistakes_are_one_line_and_make_nothing(tmp_path: Path) -> None:
    sqlite_dir = tmp_path / "sqlite"  # what `server init` without --database-url writes
    sqlite_dir.mkdir(mode=0o700)
    (sqlite_dir / "server.toml").write_text('[workspace]\ncode = "acme"\n\n[server]\ntls = true\n')
    for source, message in (
        (sqlite_dir, "keeps its database in SQLite; replicas share one PostgreSQL database"),
        (tmp_path / "nowhere", "is not a reelsync data dir"),
    ):
        done = run_cli(
            ["server", "init-replica", "--from", str(source), "--data-dir",
             str(tmp_path / "r")],
            child_env(tmp_path),
        )  # fmt: skip
        assert done.returncode == 78, done.stderr
        assert message in done.stderr
        assert done.stderr.startswith("error: ")
        assert "Traceback" not in done.stderr
        assert not (tmp_path / "r").exists()
