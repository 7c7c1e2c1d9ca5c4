"""What goes into `cacerts`."""

from mesh.plan.pki import CACERTS_KEYS, cacerts_data


def test_cacerts_has_the_four_files_and_the_chain_is_intermediate_then_root():
    data = cacerts_data("INTERMEDIATE", "KEY\n", "ROOT\n")
    assert tuple(data) == CACERTS_KEYS
    assert data == {
        "ca-cert.pem": "INTERMEDIATE\n",
        "ca-key.pem": "KEY\n",
        "root-cert.pem": "ROOT\n",
        "cert-chain.pem": "INTERMEDIATE\nROOT\n",
    }


import datetime

import pytest

from mesh.plan.renewal import renewal_generation

NOW = datetime.datetime(2026, 11, 24, 12, 0, tzinfo=datetime.timezone.utc)


@pytest.mark.parametrize(
    "previous,early,expected",
    [
        (None, 720, 0),  # a new intermediate
        ({"generation": 3, "validUntil": "2027-11-24T12:00:00Z"}, 720, 3),  # a year left: keep
        ({"generation": 3, "validUntil": "2026-12-24T12:00:01Z"}, 720, 3),  # just outside 30 days
        ({"generation": 3, "validUntil": "2026-12-24T12:00:00Z"}, 720, 4),  # window reached: reissue
        ({"generation": 0, "validUntil": "2026-11-01T00:00:00Z"}, 0, 1),  # already expired
    ],
)
def test_an_intermediate_is_reissued_once_inside_its_renewal_window(previous, early, expected):
    assert renewal_generation(previous, early, NOW) == expected
