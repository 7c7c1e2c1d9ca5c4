"""What goes into `cacerts`."""

from mesh.certificate_authority import CACERTS_KEYS, cacerts_data


def test_cacerts_has_the_four_files_and_the_chain_is_intermediate_then_root():
    data = cacerts_data("INTERMEDIATE", "KEY\n", "ROOT\n")
    assert tuple(data) == CACERTS_KEYS
    assert data == {
        "ca-cert.pem": "INTERMEDIATE\n",
        "ca-key.pem": "KEY\n",
        "root-cert.pem": "ROOT\n",
        "cert-chain.pem": "INTERMEDIATE\nROOT\n",
    }
