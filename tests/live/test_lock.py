"""The live page's lock (pcbm/live/lock.py): the session token on every route but /healthz, the Origin
check on the WebSocket and on POSTs, and no unlocked page on a network address."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from pcbm.errors import InputError
from pcbm.live.app import create_app, serving
from pcbm.live.lock import page_tokens, page_url, same_origin

TOKEN = "live-page-token-for-tests-0123456789"

OWN = "http://testserver"  # TestClient's origin: the Host header says testserver (port 80)
BEARER = {"authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def client(page_session):
    with TestClient(create_app(page_session, tokens=(TOKEN,))) as c:
        yield c


ROUTES = [("get", "/"), ("get", "/stats"), ("post", "/capture"), ("post", "/summary"),
          ("get", "/session/gallery/capture_001.png")]


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize("given", [None, "wrong-token-of-the-right-length-0123", TOKEN[:-1], ""])
def test_a_missing_or_wrong_token_gets_401(client, page_session, method, path, given):
    params = {} if given is None else {"token": given}
    r = getattr(client, method)(path, params=params)
    assert r.status_code == 401 and "token" in r.json()["detail"] and TOKEN not in r.text
    if given:
        assert getattr(client, method)(path, headers={"authorization": f"Bearer {given}"}).status_code == 401
    assert page_session.hub.captures == [] and not (page_session.folder / "summary.html").exists()


def test_healthz_needs_no_token(client):
    r = client.get("/healthz", headers={"origin": "http://elsewhere.example"})
    assert r.status_code == 200 and r.json()["ok"]


def test_the_right_token_and_the_pages_own_origin_work(client, page_session):
    page = client.get("/", params={"token": TOKEN})
    assert page.status_code == 200 and "withToken" in page.text
    assert page.headers["referrer-policy"] == "no-referrer"  # the token in the URL never leaves in a Referer
    r = client.post("/capture", headers={**BEARER, "origin": OWN})  # a header, with the page's own origin
    assert r.status_code == 200 and r.json()["file"] == "/session/gallery/capture_001.png"
    assert client.post("/capture", params={"token": TOKEN}).status_code == 200  # a script: no Origin, query token
    png = client.get("/session/gallery/capture_001.png", params={"token": TOKEN})
    assert png.status_code == 200 and png.content[:4] == b"\x89PNG"
    with client.websocket_connect(f"/ws?token={TOKEN}", headers={"origin": OWN}) as ws:
        assert ws.receive_json()["type"] == "hello"
        ws.send_json({"action": "capture"})
        while (m := ws.receive_json())["type"] != "captured":
            pass
        assert m["file"] == "/session/gallery/capture_003.png"
    assert len(page_session.hub.captures) == 3
    assert client.get("/stats", headers=BEARER).json()["refused"] == {}


FOREIGN = ["http://evil.example", "http://testserver:8080", "https://testserver", "null", "http://testserver.evil.example"]


@pytest.mark.parametrize("origin", FOREIGN)
def test_a_foreign_origin_is_refused_on_the_websocket_and_on_post_even_with_the_token(client, page_session, origin):
    with pytest.raises(WebSocketDisconnect) as refused:  # closed before it is accepted: HTTP 403 on the wire
        with client.websocket_connect(f"/ws?token={TOKEN}", headers={"origin": origin}):
            pass
    assert refused.value.code == 1008 and "cross-origin" in refused.value.reason
    for kw in ({"headers": {**BEARER, "origin": origin}}, {"params": {"token": TOKEN}, "headers": {"origin": origin}}):
        assert client.post("/capture", **kw).status_code == 403
        assert client.post("/summary", **kw).status_code == 403
    assert page_session.hub.captures == [] and not page_session.hub.clients
    assert client.app.state.lock.refused["origin"] == 5


@pytest.mark.parametrize("query", ["", "?token=", "?token=wrong-token-of-the-right-length-0123"])
def test_the_websocket_needs_the_token(client, page_session, query):
    with pytest.raises(WebSocketDisconnect) as refused:
        with client.websocket_connect(f"/ws{query}", headers={"origin": OWN}):
            pass
    assert refused.value.code == 1008 and "token" in refused.value.reason and not page_session.hub.clients


@pytest.mark.parametrize(("origin", "scheme", "host", "same"), [
    ("http://10.0.0.5:8000", "http", "10.0.0.5:8000", True),
    ("http://10.0.0.5:8000", "ws", "10.0.0.5:8000", True),  # the WebSocket handshake of the page itself
    ("HTTP://Ward-PC:8000", "ws", "ward-pc:8000", True),  # names are case-blind
    ("http://ward-pc", "http", "ward-pc:80", True),  # default ports filled in
    ("https://ward-pc", "wss", "ward-pc:443", True),
    ("http://[::1]:8000", "http", "[::1]:8000", True),
    ("https://10.0.0.5:8000", "http", "10.0.0.5:8000", False),  # another scheme
    ("http://10.0.0.5:8001", "http", "10.0.0.5:8000", False),  # another port of the same machine
    ("http://10.0.0.6:8000", "http", "10.0.0.5:8000", False),
    ("null", "http", "10.0.0.5:8000", False),  # sandboxed frames, file:// pages
    ("http://10.0.0.5:8000", "http", None, False),  # no Host: nothing to be the same as
    ("http://10.0.0.5:8000", "http", "10.0.0.5:notaport", False),
    ("http://u@10.0.0.5:8000", "http", "10.0.0.5:8000", False),
    ("ftp://10.0.0.5:8000", "http", "10.0.0.5:8000", False),
])
def test_same_origin_known_answers(origin, scheme, host, same):
    assert same_origin(origin, scheme, host) is same


def test_without_a_token_only_loopback_names_are_served(page_session):
    app = create_app(page_session, tokens=())
    with TestClient(app, base_url="http://127.0.0.1:8000") as c:
        assert c.get("/stats").status_code == 200
        assert c.post("/capture", headers={"origin": "http://127.0.0.1:8000"}).status_code == 200
        assert c.post("/capture", headers={"origin": "http://127.0.0.1:9000"}).status_code == 403
        with c.websocket_connect("ws://127.0.0.1:8000/ws", headers={"origin": "http://127.0.0.1:8000"}) as ws:
            assert ws.receive_json()["type"] == "hello"
        with pytest.raises(WebSocketDisconnect) as refused:
            with c.websocket_connect("ws://127.0.0.1:8000/ws", headers={"origin": "http://localhost:9000"}):
                pass
        assert "cross-origin" in refused.value.reason
        # a web page reaching the port through a DNS name rebound to 127.0.0.1: Host and Origin agree
        r = c.post("/capture", headers={"host": "rebound.example:8000", "origin": "http://rebound.example:8000"})
        assert r.status_code == 403
    with TestClient(app) as c:  # Host: testserver
        assert c.get("/").status_code == 403
    assert app.state.lock.refused == {"origin": 2, "host": 2}
    assert len(page_session.hub.captures) == 1


def test_page_tokens_and_the_refused_combinations(tmp_path):
    a, b = page_tokens("0.0.0.0", None, False)[0], page_tokens("0.0.0.0", None, False)[0]
    assert len(a) == 1 and len(a[0]) >= 32 and a != b  # a new random token per session
    assert page_tokens("127.0.0.1", None, True) == ((), None)
    assert page_tokens("::1", None, True) == ((), None)
    for host in ("0.0.0.0", "10.0.0.5", "::", "ward-pc"):
        with pytest.raises(InputError, match="only a loopback host"):
            page_tokens(host, None, True)
    f = tmp_path / "tokens"
    f.write_text(f"# the ward's page\n{TOKEN}\n")
    f.chmod(0o600)
    assert page_tokens("0.0.0.0", f, False) == ((TOKEN,), None)
    with pytest.raises(InputError, match="not both"):
        page_tokens("127.0.0.1", f, True)
    f.write_text("# nothing\n")
    with pytest.raises(InputError, match="holds no token"):
        page_tokens("0.0.0.0", f, False)
    with pytest.raises(InputError, match="not found"):
        page_tokens("0.0.0.0", tmp_path / "missing", False)
    assert page_url("::1", 8000, "abc") == "http://[::1]:8000/?token=abc"


def test_serving_refuses_a_network_address_without_a_token(page_session):
    with pytest.raises(InputError, match="needs a token"):
        with serving(page_session, host="0.0.0.0"):
            pass


@pytest.mark.parametrize("args", [["--host", "0.0.0.0", "--allow-unauthenticated"],
                                  ["--host", "10.0.0.5", "--allow-unauthenticated"],
                                  ["--allow-unauthenticated", "--token-file", "tokens"],
                                  ["--token-file", "missing-tokens"]])
def test_the_command_refuses_an_unlocked_network_page_before_starting(tmp_path, monkeypatch, capsys, args):
    from pcbm.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "tokens").write_text(TOKEN + "\n")
    with pytest.raises(SystemExit) as ex:
        main(["live", "--session", str(tmp_path / "sessions"), "--duration", "1", *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert ex.value.code == 2 and len(err) == 1 and err[0].startswith("error: ") and TOKEN not in err[0]
    assert not (tmp_path / "sessions").exists()  # nothing started, nothing written


def test_the_command_prints_the_url_that_opens_the_page(page_session, monkeypatch, capsys):
    """`pcbm live` (its session and server stood in for): the printed URL carries the token the app wants."""
    import uvicorn

    import pcbm.live.session
    from pcbm.cli import main

    page_session.spec = type("Spec", (), {"describe": lambda self: "phantom-sweep", "kind": "phantom", "target": None})()
    page_session.start = lambda **_: page_session
    page_session.stop = lambda: None
    page_session.slot_stats = {}
    servers = []

    class Server:
        def __init__(self, config):
            self.config = config
            servers.append(self)

        def run(self):
            pass

    monkeypatch.setattr(pcbm.live.session, "LiveSession", lambda *a, **k: page_session)
    monkeypatch.setattr(uvicorn, "Server", Server)
    main(["live", "--host", "0.0.0.0", "--port", "8123"])
    line = next(ln for ln in capsys.readouterr().err.splitlines() if "→" in ln)
    url = line.split("→ ")[1].split()[0]
    assert url.startswith("http://0.0.0.0:8123/?token=") and "this machine's address" in line
    with TestClient(servers[0].config.app, base_url="http://0.0.0.0:8123") as c:
        assert c.get(url).status_code == 200
        assert c.get("/").status_code == 401
