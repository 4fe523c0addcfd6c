import pytest

from jobsvc.errors import InvalidInput
from jobsvc.urls import check_callback_url

REFUSED = [
    "http://example.com/hook",  # not https
    "ftp://example.com/hook",
    "example.com/hook",  # not absolute
    "https://user:pass@example.com/hook",  # user info
    "https://localhost/hook",
    "https://127.0.0.1/hook",
    "https://10.0.0.8/hook",
    "https://172.16.3.4/hook",
    "https://192.168.1.1/hook",
    "https://169.254.169.254/latest/meta-data",
    "https://100.64.0.1/hook",  # carrier-grade NAT
    "https://0.0.0.0/hook",
    "https://224.0.0.1/hook",  # multicast
    "https://[::1]/hook",
    "https://[fe80::1]/hook",
    "https://[fd00::1]/hook",
    "https://[::ffff:127.0.0.1]/hook",  # IPv4-mapped loopback
    "https://[::ffff:169.254.169.254]/hook",
    "https://intranet/hook",  # single-label name
    "https://example.com:99999/hook",  # bad port
    "https:///hook",
    "https://" + "a" * 64 + ".example.com/hook",  # a label IDNA refuses
]


@pytest.mark.parametrize("url", REFUSED)
def test_refused_in_production(url):
    with pytest.raises(InvalidInput):
        check_callback_url(url, allow_private=False)


@pytest.mark.parametrize("url", ["https://example.com/hook", "https://hooks.example.org:8443/a?b=c", "https://93.184.215.14/x"])
def test_accepted_in_production(url):
    assert check_callback_url(url, allow_private=False) == url


@pytest.mark.parametrize("url", ["http://127.0.0.1:9000/hook", "http://localhost/hook", "https://10.0.0.8/hook"])
def test_private_deployments_allow_http_and_internal_hosts(url):
    assert check_callback_url(url, allow_private=True) == url


@pytest.mark.parametrize("url", ["https://user@127.0.0.1/x", "not a url", "mailto:a@b.c"])
def test_private_deployments_still_refuse_malformed(url):
    with pytest.raises(InvalidInput):
        check_callback_url(url, allow_private=True)
