"""Runs in a real browser: keyboard run and cancel, then one run that must draw on every chart, show advice, export,
land in history and overlay. Uses the simulation when the server has it, else real training on a tiny sample."""

import csv
import io
import json
import re
from urllib.parse import urlencode

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import ARTIFACTS, RUN_SETTINGS

pytestmark = pytest.mark.browser

FINISHED = {"simulate": 30_000, "real": 180_000}  # ms: a real run pays the TensorFlow import once per server


def _open_for(session, run_mode, **extra):
    return session.open("?" + urlencode({"mode": run_mode, **RUN_SETTINGS[run_mode], **extra}))


def test_keyboard_runs_and_escape_cancels(session, run_mode):
    page = _open_for(session, run_mode)
    run, cancel, progress = page.locator("#run"), page.locator("#cancel"), page.locator("#progress-text")
    page.locator("#seed").focus()
    page.keyboard.press("Space")  # typing in a field never starts a run
    page.keyboard.press("Enter")
    page.wait_for_timeout(300)
    expect(cancel).to_be_disabled()

    page.locator("#noise_multiplier").focus()  # on a slider, Enter runs
    page.keyboard.press("Enter")
    expect(cancel).to_be_enabled()
    expect(run).to_be_disabled()
    page.keyboard.press("Escape")
    expect(progress).to_contain_text("Cancelled", timeout=30_000)
    expect(page.locator("#status")).to_contain_text("cancelled")
    expect(run).to_be_enabled()
    expect(cancel).to_be_disabled()

    page.locator("body").click(position={"x": 5, "y": 400})  # nothing focused: Space runs, Escape cancels
    page.keyboard.press("Space")
    expect(cancel).to_be_enabled()
    page.keyboard.press("Escape")
    expect(progress).to_contain_text("Cancelled", timeout=30_000)


def _table(page, card, name_index=0):
    """The rows of a chart card's table view, as lists of cell texts (header row first)."""
    box = page.locator(f"#card-{card} [data-table-box] table").nth(name_index)
    expect(box).to_be_visible()
    return [[c.text_content() for c in row.locator("th, td").all()] for row in box.locator("tr").all()]


def _download(page, click):
    with page.expect_download() as info:
        click()
    download = info.value
    return download.suggested_filename, open(download.path(), "rb").read()


def test_a_run_draws_every_chart_advises_exports_and_overlays(session, run_mode):
    # C = 0.01 clips every gradient, so the adviser must say so: the recommendations cannot pass empty.
    page = _open_for(session, run_mode, max_grad_norm=0.01)
    epochs = RUN_SETTINGS[run_mode]["epochs"]
    page.locator("#run").click()
    expect(page.locator("#progress-text")).to_contain_text("Finished", timeout=FINISHED[run_mode])
    expect(page.locator("#status")).to_contain_text("finished: test accuracy")

    for card in ("progress", "budget", "clipping"):
        page.locator(f"#card-{card} [data-table]").click()
    progress = _table(page, "progress")
    assert progress[0][:3] == ["epoch", f"test accuracy{' (simulated)' if run_mode == 'simulate' else ''}",
                               f"test loss{' (simulated)' if run_mode == 'simulate' else ''}"]
    assert [row[0] for row in progress[1:]] == [str(e) for e in range(1, epochs + 1)]
    assert all(re.match(r"^\d", row[1]) and re.match(r"^\d", row[2]) for row in progress[1:])
    assert len(_table(page, "progress", 1)) > 1, "per-step losses"
    budget = _table(page, "budget")
    spent = budget[0].index(next(c for c in budget[0] if c.startswith("ε spent")))
    assert sum(1 for row in budget[1:] if row[spent]) == epochs
    assert len(_table(page, "clipping", 0)) > 2, "gradient-norm histogram bins"
    clipped = _table(page, "clipping", 1)
    assert [float(row[1]) for row in clipped[1:]] and all(float(row[1]) > 90 for row in clipped[1:])
    expect(page.locator("#chart-progress")).to_have_attribute("aria-label", re.compile(f"epoch {epochs} of {epochs}"))
    expect(page.locator("#chart-histogram")).to_have_attribute("aria-label", re.compile(r"C = 0\.01"))

    expect(page.locator("#diagnosis[data-id=clip_raise]")).to_be_visible()  # the diagnosis, first and alone
    metrics = page.locator("#metrics")
    expect(metrics).to_contain_text("Test accuracy")
    expect(metrics).to_contain_text("RDP · δ = 1e-5 · Poisson sampling")
    simulated = run_mode == "simulate"
    for badge in page.locator("[data-sim]").all():
        expect(badge).to_be_visible() if simulated else expect(badge).to_be_hidden()
    if simulated:
        expect(page.locator("#chart-privacy")).to_have_attribute("aria-label", re.compile("simulated run"))
        expect(metrics).to_contain_text(re.compile(r"A real run with these settings ends at [\d.]+%–[\d.]+% 8 times"))

    name, body = _download(page, lambda: page.locator("#export-csv").click())
    rows = list(csv.DictReader(io.StringIO(body.decode())))
    assert name.endswith(".csv") and len(rows) == epochs and rows[0]["mode"] == run_mode
    name, body = _download(page, lambda: page.locator("#export-json").click())
    exported = json.loads(body)
    assert name.endswith(".json") and len(exported["epochs"]) == epochs and "token" not in exported
    name, body = _download(page, lambda: page.locator("#export-statement").click())
    assert name.endswith(".txt") and b"epsilon = " in body and b"Poisson" in body
    name, body = _download(page, lambda: page.locator("#card-budget [data-png]").click())
    assert name.endswith(".png") and body.startswith(b"\x89PNG")
    name, body = _download(page, lambda: page.locator("#download-statement").evaluate("b => b.click()"))
    assert b"differential" in body or b"differentially" in body

    history = page.locator("#history-body tr")
    expect(history).to_have_count(1)
    expect(history.first.locator("input[type=checkbox]")).to_be_disabled()  # the run on the charts: not on itself
    page.locator("#run").click()  # a second run, so the first can be overlaid on it
    expect(history).to_have_count(2, timeout=FINISHED[run_mode])
    expect(history.first).to_contain_text("2 ·")  # the same numbers as the legend
    history.nth(1).locator("input[type=checkbox]").check()
    expect(page.locator("#card-progress [data-table-box] table").first).to_contain_text("run 1: σ 1.1, C 0.01")
    expect(page.locator("#card-budget [data-table-box] table")).to_contain_text("run 1")
    page.locator("#max_grad_norm").press("End")
    history.nth(1).get_by_role("button", name="Load settings").click()
    expect(page.locator("#max_grad_norm-value")).to_have_text("0.01")

    for card in ("progress", "budget", "clipping"):  # the screenshots show the charts, not their tables
        page.locator(f"#card-{card} [data-table]").click()
        expect(page.locator(f"#card-{card} [data-table-box]")).to_be_hidden()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "page-desktop.png"), full_page=True)
    page.set_viewport_size({"width": 360, "height": 780})
    page.wait_for_timeout(300)
    assert page.evaluate("document.documentElement.scrollWidth") <= 360, "no sideways scrolling at 360 px"
    page.screenshot(path=str(ARTIFACTS / "page-360.png"), full_page=True)


def test_a_private_run_is_compared_with_the_non_private_baseline(session, run_mode):
    page = _open_for(session, run_mode, private="false")
    page.locator("#run").click()
    expect(page.locator("#progress-text")).to_contain_text("Finished", timeout=FINISHED[run_mode])
    expect(page.locator("#metrics")).to_contain_text("ε = ∞")
    expect(page.locator("#epsilon-rdp")).to_have_text("∞")
    page.locator("#private").check()
    expect(page.locator("#epsilon-rdp")).to_have_text(re.compile(r"^\d"))
    page.locator("#run").click()
    expect(page.locator("#progress-text")).to_contain_text("Finished", timeout=FINISHED[run_mode])
    comparison = page.locator("#metrics .metric").filter(has_text="vs non-private")
    expect(comparison).to_contain_text(re.compile(r"[+−]\d+\.\d points"))
    expect(comparison).to_contain_text("the price of privacy")
    expect(page.locator("#history-body tr")).to_have_count(2)
    page.locator("#history-clear").click()
    expect(page.locator("#history-body tr")).to_have_count(0)
    expect(page.locator("#history-empty")).to_be_visible()
    expect(page.locator("#history-clear")).to_have_text("Undo clear")  # a slip costs nothing
    page.locator("#history-clear").click()
    expect(page.locator("#history-body tr")).to_have_count(2)
    expect(page.locator("#history-clear")).to_have_text("Clear history")


def test_a_reload_picks_up_the_run_in_flight(session, run_mode):
    # Nothing already computed is lost: the tab keeps the run's id and token, polls it again from its first record,
    # and the finished run lands in history once, cancellable on the way.
    page = _open_for(session, run_mode)
    page.locator("#run").click()
    expect(page.locator("#cancel")).to_be_enabled()
    page.reload()
    page.wait_for_selector("body.ready", state="attached")
    expect(page.locator("#cancel")).to_be_enabled()
    expect(page.locator("#progress-text")).to_contain_text("Finished", timeout=FINISHED[run_mode])
    epochs = RUN_SETTINGS[run_mode]["epochs"]
    page.locator("#card-progress [data-table]").click()
    assert [row[0] for row in _table(page, "progress")[1:]] == [str(e) for e in range(1, epochs + 1)]
    expect(page.locator("#history-body tr")).to_have_count(1)
    page.reload()  # an ended run is not picked up again
    page.wait_for_selector("body.ready", state="attached")
    expect(page.locator("#run")).to_be_enabled()
    expect(page.locator("#cancel")).to_be_disabled()
    expect(page.locator("#history-body tr")).to_have_count(1)
