"""lab/traffic.py's reading of a sidecar's Envoy /clusters page (the lab tests' proof that each
request to helloworld-fresh was a handshake of its own)."""

from lab.traffic import FRESH, ROUTE, endpoint_counters, handshake_counters

PAGE = f"""outbound|5000||{FRESH}.sample.svc.cluster.local::10.100.1.5:5000::cx_total::46
outbound|5000||{FRESH}.sample.svc.cluster.local::10.100.1.5:5000::rq_total::46
outbound|5000||{FRESH}.sample.svc.cluster.local::10.100.253.2:15443::cx_total::47
outbound|5000||{FRESH}.sample.svc.cluster.local::10.100.253.2:15443::rq_total::45
outbound|5000||{FRESH}.sample.svc.cluster.local::10.100.253.2:15443::hostname::
outbound|5000||helloworld.sample.svc.cluster.local::10.100.1.5:5000::cx_total::2
outbound|5000||helloworld.sample.svc.cluster.local::10.100.253.3:15443::cx_connect_fail::4
outbound|5000||helloworld.sample.svc.cluster.local::10.100.253.3:15443::rq_error::5
"""


def test_counters_per_endpoint_of_the_fresh_service_only():
    assert handshake_counters(PAGE) == {
        "10.100.1.5:5000": {"cx_total": 46, "rq_total": 46},
        "10.100.253.2:15443": {"cx_total": 47, "rq_total": 45},
    }


def test_any_counter_of_any_service():
    assert endpoint_counters(PAGE, "helloworld", ["cx_connect_fail", "cx_total"]) == {
        "10.100.1.5:5000": {"cx_total": 2},
        "10.100.253.3:15443": {"cx_connect_fail": 4},
    }


def test_the_fresh_service_retries_nothing():
    assert ROUTE["spec"]["http"][0]["retries"] == {"attempts": 0}
