"""Provider calls reach public hosts only (and the private ones PROVIDER_PRIVATE_HOSTS names):
checked when a base URL is saved, and again on the address each connection actually uses."""

import socket

import pytest
import requests
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from providers.egress import RefusedDestination, base_url_problem
from providers.http import session_for
from providers.models import ProviderAccount
from tests.providers.test_admin import ADD_URL, account_form
from tickets import batch, services, sync
from tickets.models import SyncAttempt, SyncState

HINT = (
    "provider accounts may only reach public hosts. To allow a host on your own network, "
    "add it to PROVIDER_PRIVATE_HOSTS."
)
REBOUND_HOST = "tickets.provider.example"  # a name no real DNS answers: only our fake resolver does


@pytest.fixture
def no_allow_list(settings):
    settings.PROVIDER_PRIVATE_HOSTS = []
    return settings


def sandbox_port(sandbox) -> int:
    return sandbox.server.server_address[1]


def fake_dns(monkeypatch, answers: dict[str, list[str]]) -> list[str]:
    """Answer getaddrinfo for the names in `answers` (each call takes the next list of addresses,
    the last one repeating); other names resolve as usual. Returns the names looked up, in order."""
    real = socket.getaddrinfo
    asked: list[str] = []

    def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
        if host not in answers:
            return real(host, port, family, type, proto, flags)
        asked.append(host)
        address = answers[host].pop(0) if len(answers[host]) > 1 else answers[host][0]
        af = socket.AF_INET6 if ":" in address else socket.AF_INET
        sockaddr = (address, port, 0, 0) if af == socket.AF_INET6 else (address, port)
        return [(af, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", sockaddr)]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


# --- what a base URL may be ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "refusal"),
    [
        ("http://127.0.0.1:8100/kapture", "127.0.0.1 resolves to a loopback address; "),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 resolves to a link-local address; "),
        ("https://10.0.0.1/api", "10.0.0.1 resolves to a private address; "),
        ("http://[::1]:8100/", "[::1] resolves to a loopback address; "),
        ("http://[::ffff:127.0.0.1]/", "[::ffff:127.0.0.1] resolves to a loopback address; "),
        ("http://0.0.0.0:8100/", "0.0.0.0 resolves to an unspecified address; "),
        ("http://224.0.0.1/", "224.0.0.1 resolves to a multicast address; "),
        ("http://100.64.0.1/", "100.64.0.1 resolves to a non-public address; "),
        ("http://localhost:8100/", "localhost resolves to a loopback address ("),
    ],
)
def test_base_urls_reaching_non_public_addresses_are_refused_naming_the_setting(no_allow_list, url, refusal):
    problem = base_url_problem(url)
    assert problem is not None and problem.startswith(refusal) and problem.endswith(HINT)


def test_a_public_ip_literal_passes_without_asking_dns(monkeypatch):
    def no_dns(*args, **kwargs):
        raise AssertionError("an IP literal needs no lookup")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    assert base_url_problem("https://93.184.215.14/api/v2") is None
    assert "loopback" in base_url_problem("https://127.0.0.1/api/v2")


def test_a_name_is_refused_when_any_of_its_addresses_is_private(no_allow_list, monkeypatch):
    fake_dns(monkeypatch, {REBOUND_HOST: ["93.184.215.14"]})
    assert base_url_problem(f"https://{REBOUND_HOST}/") is None
    fake_dns(monkeypatch, {REBOUND_HOST: ["10.1.2.3"]})
    assert base_url_problem(f"https://{REBOUND_HOST}/") == (
        f"{REBOUND_HOST} resolves to a private address (10.1.2.3); {HINT}"
    )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://93.184.215.14/", "must start with http:// or https://"),
        ("file:///etc/passwd", "must start with http:// or https://"),
        ("https://admin:hunter2@93.184.215.14/", "may not carry a user name or password"),
    ],
)
def test_other_schemes_and_user_info_are_refused(url, message):
    assert message in base_url_problem(url)


def test_the_consoles_own_host_is_refused(settings):
    settings.ALLOWED_HOSTS = ["console.acme.example"]
    assert "this console's own address" in base_url_problem("https://console.acme.example/api")


def test_the_allow_list_matches_host_and_port_exactly_or_the_host_on_any_port(settings):
    settings.PROVIDER_PRIVATE_HOSTS = ["127.0.0.1:8100", "localhost", "[::1]:443", "10.0.0.7"]
    assert base_url_problem("http://127.0.0.1:8100/kapture") is None
    assert "loopback" in base_url_problem("http://127.0.0.1:8101/kapture")
    assert "loopback" in base_url_problem("http://127.0.0.1/kapture")  # port 80
    assert base_url_problem("http://localhost:9999/") is None
    assert base_url_problem("https://[::1]/") is None  # https: port 443
    assert "loopback" in base_url_problem("http://[::1]/")
    assert base_url_problem("https://10.0.0.7:8443/") is None


def test_a_malformed_allow_list_entry_is_reported_at_startup(settings):
    settings.PROVIDER_PRIVATE_HOSTS = ["helpdesk.internal", "10.0.0.7:https"]
    with pytest.raises(SystemCheckError, match="entry '10.0.0.7:https' is not host, host:port"):
        call_command("check", "--tag", "security")


# --- connecting ---------------------------------------------------------------------------------
@pytest.mark.django_db
def test_an_account_whose_host_is_no_longer_allowed_is_refused_before_any_request(
    admin_client, sandbox, settings
):
    admin_client.post(ADD_URL, account_form(sandbox))  # allow-listed: saved
    account = ProviderAccount.objects.get(name="Kapture EU")
    settings.PROVIDER_PRIVATE_HOSTS = []
    result = services.test_connection(account=account)
    assert not result.ok
    assert result.message == f"127.0.0.1 resolves to a loopback address; {HINT}"
    assert sandbox.control("calls") == {}
    [attempt] = SyncAttempt.objects.filter(account=account)
    assert (attempt.outcome, attempt.http_status, attempt.error) == ("failed", None, result.message)
    account.refresh_from_db()
    assert account.last_error == result.message


def test_the_transport_itself_refuses_a_loopback_connection(sandbox, no_allow_list):
    session = session_for(None, sandbox.base_url("kapture"))
    with pytest.raises(RefusedDestination, match="127.0.0.1 resolves to a loopback address"):
        session.post(sandbox.base_url("kapture") + "/anything", json={}, timeout=3)
    assert sandbox.control("calls") == {}


@pytest.mark.django_db
def test_a_name_that_resolves_elsewhere_at_connect_time_is_refused_token_call_included(
    admin_client, sandbox, monkeypatch, no_allow_list
):
    """DNS rebinding: public when saved, 127.0.0.1 when the worker connects."""
    fake_dns(monkeypatch, {REBOUND_HOST: ["93.184.215.14", "127.0.0.1"]})
    url = f"http://{REBOUND_HOST}:{sandbox_port(sandbox)}/particlespace"
    form = account_form(
        sandbox,
        name="Particle",
        kind="particlespace",
        base_url=url,
        **{f"cred__particlespace__{k}": v for k, v in sandbox.credentials["particlespace"].items()},
    )
    response = admin_client.post(ADD_URL, form)
    assert response.status_code == 302, response.context["adminform"].form.errors
    account = ProviderAccount.objects.get(name="Particle")
    result = services.test_connection(account=account)  # Particle Space's test is a token call
    assert result.message == f"{REBOUND_HOST} resolves to a loopback address (127.0.0.1); {HINT}"
    assert sandbox.control("calls") == {}


@pytest.mark.django_db(transaction=True)  # the batch's threads read on connections of their own
def test_a_ticket_sent_to_a_rebound_name_fails_with_the_reason_and_nothing_is_sent(
    account_factory, sandbox, monkeypatch, no_allow_list, nudges
):
    account = account_factory("kapture", base_url=f"http://{REBOUND_HOST}:{sandbox_port(sandbox)}/kapture")
    fake_dns(monkeypatch, {REBOUND_HOST: ["127.0.0.1"]})
    ticket = services.create_ticket(account=account, title="Printer on fire")
    assert batch.push_account(sync.TICKETS, account.pk) == {SyncState.FAILED: 1}
    ticket.refresh_from_db()
    # The reason, addressed to whoever can fix it: the account's settings are a provider admin's.
    assert f"{REBOUND_HOST} resolves to a loopback address (127.0.0.1); {HINT}" in ticket.last_error
    assert "A provider admin must fix the account settings" in ticket.last_error and ticket.account_problem
    assert ticket.attempts == 1  # a configuration error: not retried
    assert sandbox.control("calls") == {} and sandbox.state("kapture")["tickets"] == []


@pytest.mark.django_db
def test_an_allow_listed_name_is_resolved_once_and_that_address_is_used(
    account_factory, sandbox, monkeypatch, settings
):
    port = sandbox_port(sandbox)
    settings.PROVIDER_PRIVATE_HOSTS = [f"{REBOUND_HOST}:{port}"]
    asked = fake_dns(monkeypatch, {REBOUND_HOST: ["127.0.0.1"]})
    account = account_factory("kapture", base_url=f"http://{REBOUND_HOST}:{port}/kapture")
    result = services.test_connection(account=account)
    assert result.ok, result.message
    assert asked == [REBOUND_HOST]  # one lookup: checked and connected to the same answer
    assert sum(sandbox.control("calls").values()) == 1


# --- redirects ----------------------------------------------------------------------------------
@pytest.mark.django_db
def test_a_redirect_to_another_host_is_not_followed(account_factory, sandbox, settings):
    port = sandbox_port(sandbox)
    # localhost:port is the sandbox too, and allowed: only the no-redirect rule can stop the call.
    settings.PROVIDER_PRIVATE_HOSTS = [*settings.PROVIDER_PRIVATE_HOSTS, f"localhost:{port}"]
    account = account_factory("kapture")
    sandbox.faults(script=["redirect"], redirect_to=f"http://localhost:{port}/kapture/search")
    result = services.test_connection(account=account)
    assert not result.ok
    assert result.message.startswith(
        f"The provider answered HTTP 302, a redirect to http://localhost:{port}; "
        "provider calls do not follow redirects."
    )
    assert sandbox.control("calls") == {}  # the redirect's target was never asked


@pytest.mark.django_db(transaction=True)  # the batch's threads read on connections of their own
def test_a_ticket_redirected_to_the_metadata_service_fails_and_names_it(account_factory, sandbox, nudges):
    account = account_factory("kapture")
    ticket = services.create_ticket(account=account, title="Printer on fire")
    sandbox.faults(script=["redirect"])  # to http://169.254.169.254/latest/meta-data/
    assert batch.push_account(sync.TICKETS, account.pk) == {SyncState.FAILED: 1}
    ticket.refresh_from_db()
    assert "HTTP 302, a redirect to http://169.254.169.254;" in ticket.last_error
    assert "meta-data" not in ticket.last_error  # only the scheme and host are named
    [attempt] = SyncAttempt.objects.filter(ticket=ticket)
    assert (attempt.http_status, attempt.outcome) == (302, "failed")
    assert sandbox.state("kapture")["tickets"] == []


def test_plain_requests_outside_provider_sessions_are_untouched(sandbox, no_allow_list):
    # The guard is mounted on provider sessions only: the tests' own control calls still work.
    assert requests.get(f"{sandbox.server.url}/_sandbox/health", timeout=3).json()["ok"]


# --- TLS: the checked address is used, the host's name is kept ------------------------------------
def self_signed(tmp_path, name: str) -> tuple[str, str]:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return str(cert_path), str(key_path)


def test_https_to_an_allowed_name_connects_to_the_checked_address_with_the_names_sni_and_host(
    tmp_path, monkeypatch, settings
):
    import ssl
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    seen: dict[str, str] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - stdlib naming
            seen["host"] = self.headers["Host"]
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    cert, key = self_signed(tmp_path, REBOUND_HOST)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)

    def record_sni(sock, name, ctx) -> None:
        seen["sni"] = name

    context.sni_callback = record_sni
    server = HTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        settings.PROVIDER_PRIVATE_HOSTS = [f"{REBOUND_HOST}:{port}"]
        asked = fake_dns(monkeypatch, {REBOUND_HOST: ["127.0.0.1"]})
        url = f"https://{REBOUND_HOST}:{port}/api"
        answer = session_for(None, url).get(url, verify=cert, timeout=5)
        assert answer.text == "ok"  # the certificate was checked against the name, not the IP
        assert seen == {"sni": REBOUND_HOST, "host": f"{REBOUND_HOST}:{port}"}
        assert asked == [REBOUND_HOST]
    finally:
        server.shutdown()
        server.server_close()
