"""The throwaway servers behind the Redis and PostgreSQL tests start, answer, and come back."""

from __future__ import annotations

import pytest

from tests.servers import RedisServer, ServerUnavailable, servers_required


def test_redis_answers_and_returns_after_a_kill(redis_server, redis_url):
    assert redis_url == redis_server.url
    assert redis_server.command("SET", "k", "v") == b"+OK\r\n"
    redis_server.kill()
    assert not redis_server.running
    with pytest.raises(OSError):
        redis_server.command("PING", timeout=2)
    redis_server.start()
    assert redis_server.command("PING") == b"+PONG\r\n"
    # Nothing is persisted: a restarted Redis is empty.
    assert redis_server.command("GET", "k") == b"$-1\r\n"


def test_postgres_databases_are_fresh_and_separate(postgres_server, postgres_url):
    db = postgres_url.rsplit("/", 1)[1]
    assert postgres_url.startswith(f"postgresql://postgres@127.0.0.1:{postgres_server.port}/")
    postgres_server.query("CREATE TABLE t (x int); INSERT INTO t VALUES (1), (2)", db)
    assert postgres_server.query("SELECT count(*) FROM t", db).strip() == "2"
    other = postgres_server.create_database().rsplit("/", 1)[1]
    assert other != db
    assert postgres_server.query("SELECT to_regclass('t') IS NULL", other).strip() == "t"


def test_a_missing_binary_says_what_to_install(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setenv("ROUTER_REDIS_SERVER", "")
    import tests.servers as servers

    monkeypatch.setattr(servers, "_which", lambda name, dirs: None)
    with pytest.raises(ServerUnavailable, match="apt-get install redis-server"):
        RedisServer()


def test_require_flag(monkeypatch):
    monkeypatch.delenv("ROUTER_REQUIRE_SERVERS", raising=False)
    assert not servers_required()
    monkeypatch.setenv("ROUTER_REQUIRE_SERVERS", "1")
    assert servers_required()
