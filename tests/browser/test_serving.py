"""What a classroom deployment does to the page, in a real browser against real server processes: a rate-limited
run says why and when, a run the server evicted or lost in a restart says so and keeps what the page had shown,
XSS payloads in every string the page echoes render as text, and the page asks nothing of any other host."""

import json
from urllib.parse import quote, urlencode, urlsplit

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import ServerProcess, Session, _get_json

pytestmark = pytest.mark.browser

PAYLOAD = '"><img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'
FETCH_FAILED = r"Failed to load resource|ERR_CONNECTION_REFUSED|net::ERR"


@pytest.fixture
def serve(browser):
    """``serve(env)`` -> (server, session): a server of its own (run.py with ``env``) and a page session on it."""
    started = []

    def make(env):
        server = ServerProcess(log="browser-serving-server.log", env={"WARM_UP": "0", **env}).start()
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        started.append((server, context))
        return server, Session(context, server.base)

    yield make
    for server, context in started:
        context.close()
        server.stop()


def post(base, body):
    from urllib.request import Request, urlopen

    request = Request(base + "/api/runs", data=json.dumps(body).encode(), method="POST",
                      headers={"Content-Type": "application/json"})
    with urlopen(request, timeout=60) as response:
        return json.load(response)


def wait_finished(base, run_id, timeout=60):
    import time

    deadline = time.monotonic() + timeout
    while _get_json(f"{base}/api/runs/{run_id}")["status"] != "succeeded":
        assert time.monotonic() < deadline
        time.sleep(0.3)


def test_a_rate_limited_run_says_why_and_when(serve):
    server, session = serve({"RATE_LIMIT_SIMULATE": "2 per minute"})
    for _ in range(2):  # this address's quota, spent by "another tab"
        post(server.base, {"mode": "simulate", "epochs": 1})
    session.expect_errors(FETCH_FAILED)  # the browser logs the 429 of the refused fetch
    page = session.open("?mode=simulate&epochs=2")
    page.locator("#run").click()
    error = page.locator("#run-error")
    expect(error).to_contain_text("The server is busy: too many simulate runs started from your address "
                                  "(at most 2 per minute)")
    expect(error).to_contain_text("Try again in")
    expect(page.locator("#run")).to_be_enabled()
    assert session.unexpected_errors() == []


def test_a_run_evicted_before_the_page_polls_it_again_says_so(serve):
    server, session = serve({"MAX_FINISHED_RUNS": "1", "SIM_PACING_SECONDS": "1"})
    body = {"mode": "simulate", "epochs": 2}
    evicted = post(server.base, body)
    wait_finished(server.base, evicted["id"])
    wait_finished(server.base, post(server.base, body)["id"])
    post(server.base, body)  # the oldest finished run is evicted now
    session.expect_errors(FETCH_FAILED)
    page = session.open()
    # This tab had started it and is reloaded: the page polls it again, as after any reload.
    page.evaluate("([key, value]) => sessionStorage.setItem(key, value)",
                  ["active-run", json.dumps({"started": evicted, "body": body})])
    page.reload()
    page.wait_for_selector("body.ready", state="attached")
    expect(page.locator("#run-error")).to_contain_text("finished and was removed from the server")
    expect(page.locator("#run")).to_be_enabled()
    expect(page.locator("#cancel")).to_be_disabled()
    assert session.unexpected_errors() == []


def test_a_server_restart_during_a_run_says_what_was_lost_and_keeps_what_was_shown(serve):
    server, session = serve({"SIM_PACING_SECONDS": "40"})
    session.expect_errors(FETCH_FAILED)
    page = session.open("?mode=simulate&epochs=10")
    page.locator("#run").click()
    expect(page.locator("#progress-text")).to_contain_text("Epoch 2", timeout=30_000)
    server.stop()
    server.start()  # the same address; a new process that never saw the run
    error = page.locator("#run-error")
    expect(error).to_contain_text("was started before the server restarted", timeout=60_000)
    expect(error).to_contain_text("This page keeps the")
    expect(page.locator("#history-body")).to_contain_text("(cut short)")
    expect(page.locator("#progress-text")).to_contain_text("Cut short")
    expect(page.locator("#run")).to_be_enabled()
    assert session.unexpected_errors() == []


def test_xss_payloads_in_every_echoed_string_render_as_text(serve):
    server, session = serve({})
    knobs = [row["name"] for row in _get_json(server.base + "/api/params")["params"]]
    query = urlencode({**{name: PAYLOAD for name in knobs}, "hide": PAYLOAD, PAYLOAD: PAYLOAD})
    dialogs = []
    session.page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    session.expect_errors(FETCH_FAILED)
    page = session.open("?" + query)
    # A run id from this tab's storage, which the server echoes in its 404.
    page.evaluate("([key, value]) => sessionStorage.setItem(key, value)",
                  ["active-run", json.dumps({"started": {"id": PAYLOAD, "token": PAYLOAD, "status": "running"},
                                             "body": {"mode": "simulate"}})])
    page.reload()
    page.wait_for_selector("body.ready", state="attached")
    expect(page.locator("#run-error")).to_contain_text(PAYLOAD[:20])  # echoed, as text
    page.goto(server.base + "/docs")
    page.goto(f"{server.base}/api/runs/{quote(PAYLOAD, safe='')}")
    assert json.loads(page.locator("body").inner_text())["errors"]  # JSON, never markup
    page.goto(server.base + "/?" + query)
    page.wait_for_selector("body.ready", state="attached")
    assert page.evaluate("window.__xss") is None and dialogs == []
    assert page.locator("img[src='x']").count() == 0
    assert session.unexpected_errors() == []


def test_the_page_asks_nothing_of_any_other_host(session, run_mode):
    page = session.open(f"?mode={run_mode}&epochs=2&dataset_size=200&batch_size=32")
    page.locator("#run").click()
    expect(page.locator("#progress-text")).to_contain_text("Finished", timeout=180_000)
    page.goto(session.base + "/docs")
    page.goto(session.base + "/api/openapi.json")
    hosts = {urlsplit(entry.split(" ", 1)[1]).hostname for entry in session.requests}
    assert session.requests and hosts == {"127.0.0.1"}, sorted(hosts)
