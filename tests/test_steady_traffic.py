"""Steady traffic's pure parts (mesh/verify/steady.py): the shell each sleep runs, curl's output cut
into requests, and the figures per phase. The streams themselves run on the lab
(tests/integration/test_lab_without_downtime.py)."""

from __future__ import annotations

import subprocess
import time

import pytest

from mesh import config
from mesh.verify import steady
from mesh.verify.traffic import SOURCE_ITEM, Reply, split_responses, traffic_results

V1 = "Hello version: v1, instance: helloworld-v1-abc\n"


def test_curl_output_is_cut_into_one_reply_per_request_and_keeps_what_is_unfinished():
    text = V1 + "200 0.004 1\n" + V1 + "200 0.002 0\n" + "\n000 5.001 1\n" + "Hello version: v2"
    replies, rest = split_responses(text)
    assert [r.version for r in replies] == ["v1", "v1", None]
    assert [r.connects for r in replies] == [1, 0, 1]
    assert replies[0].seconds == 0.004 and replies[2].error == "empty response"
    assert rest.strip() == "Hello version: v2"


def test_an_envoy_error_is_a_failure_with_its_status_and_body():
    (reply,), _ = split_responses("no healthy upstream\n503 0.001 0\n")
    assert reply.error == "HTTP 503: no healthy upstream"


@pytest.mark.parametrize("kind", steady.STREAMS)
def test_each_stream_is_bounded_and_stops_as_soon_as_its_stdin_closes(kind, tmp_path):
    script = steady.stream_script(kind, rate=2, seconds=100, request_timeout=2)
    assert "--max-time 2" in script
    assert (
        ("'helloworld.sample:5000/hello?request=[1-200]'" in script and "--rate 120/m" in script)
        if kind == "kept"
        else "-lt 200" in script
    )
    # The pod's sh with a stand-in curl: one answer per request (the kept stream's one curl
    # answers every half second for as long as it is let).
    once = "printf 'Hello version: v1, instance: x\\n200 0.001 1\\n'"
    curl = f"#!/bin/sh\nwhile :; do {once}; sleep 0.5; done\n" if kind == "kept" else f"#!/bin/sh\n{once}\n"
    (tmp_path / "curl").write_text(curl)
    (tmp_path / "curl").chmod(0o755)
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin"}
    shell = subprocess.Popen(["sh", "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True)
    try:
        first = shell.stdout.readline()
        assert first.startswith("Hello version: v1")
        started = time.monotonic()
        shell.stdin.close()  # the exec's stdin closes when the caller stops or goes away
        shell.wait(timeout=10)
        assert time.monotonic() - started < 3, "the stream went on after its stdin closed"
    finally:
        shell.kill()
        subprocess.run(["pkill", "-f", str(tmp_path / "curl")], check=False)


def samples(*rows):
    return [steady.Sample(at, src, kind, Reply(*reply), target) for at, src, kind, reply, target in rows]


@pytest.fixture
def traffic(east_west):
    mesh = config.parse(east_west)
    t = steady.SteadyTraffic(mesh, {}, lambda: {})
    t.marks = [steady.Mark(0, "before"), steady.Mark(10, "during"), steady.Mark(20, "after"), steady.Mark(30, "stop")]
    ok = ("v1", "helloworld-v1-abc", 0.004)
    ok2 = ("v2", "helloworld-v2-xyz", 0.020)
    bad = (None, None, None, "HTTP 503: no healthy upstream")
    t.samples = samples(
        (1, "east", "new", ok, "east"),
        (2, "east", "new", ok2, "west"),
        (11, "east", "new", bad, None),
        (12, "east", "kept", bad, None),
        (13, "east", "new", ok2, "west"),
        (21, "west", "kept", ok, "east"),
    )
    return t


def test_failures_are_counted_in_the_phase_that_lost_them(traffic):
    assert steady.failures_by_phase(traffic) == {"during": 2}
    phases = steady.by_phase(traffic)
    during = phases["during"][("east", "new")]
    assert (during.sent, during.failed, dict(during.versions)) == (2, 1, {"v2": 1})
    assert phases["before"][("east", "new")].versions == {"v1": 1, "v2": 1}
    assert phases["after"][("west", "kept")].answered_by == {"east": 1}


def test_recovery_is_the_time_to_the_last_failure_after_the_event(traffic):
    assert steady.recovery(traffic, since=10) == pytest.approx(2)
    assert steady.recovery(traffic, since=15) == 0.0
    traffic.samples.append(steady.Sample(25, "west", "new", Reply(error="curl: (28) timed out"), None))
    assert steady.recovery(traffic, since=10) is None  # still failing when the traffic stopped


def test_rows_give_the_one_shot_checks_per_pair_view(traffic):
    rows = {row.source: row for row in steady.rows_of(traffic)}
    assert rows["east"].requests == 5 and len(rows["east"].errors) == 2
    assert sorted(rows["east"].replies) == ["east", "west"] and rows["east"].missing == ()
    assert rows["west"].missing == ("west",)


def test_a_stream_that_never_started_fails_its_source_though_the_other_one_answered(traffic):
    """As in a CI run: east's kept-alive stream could not open its exec, its new-connection stream
    ran. Half the traffic asked for was never sent: the source fails, saying which stream and why."""
    traffic.errors.append("east kept: (0) Reason: Handshake status 200 OK")
    rows = {row.source: row for row in steady.rows_of(traffic)}
    (source,) = [r for r in traffic_results(rows["east"]) if r.item == SOURCE_ITEM]
    assert source.failed, source
    assert "then stopped: east kept: (0) Reason: Handshake status 200 OK" in source.detail
    assert rows["west"].exec_error is None
