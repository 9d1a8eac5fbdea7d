"""The "Cost of privacy" card in a real browser, after tiny real runs: a private run with no non-private run of its
model and batch says so and shows its paired step ratio and phases; after a non-private run of the same model and
batch, the next private run is compared with it epoch against epoch, in time and memory."""

import re
from urllib.parse import urlencode

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import ARTIFACTS

pytestmark = pytest.mark.browser

REAL = {"mode": "real", "dataset_size": 200, "batch_size": 32, "epochs": 1, "target_epsilon": 10}
FINISHED = 240_000  # ms: the first real run pays the TensorFlow import


def _run(page):
    page.locator("#run").click()
    expect(page.locator("#progress-text")).to_contain_text("Finished", timeout=FINISHED)
    return page.locator("#cost-of-privacy")


def test_the_cost_card_compares_a_private_run_with_the_last_non_private_one(session):
    page = session.open("?" + urlencode(REAL))
    card = _run(page)
    expect(card).to_contain_text(re.compile(r"[\d.]+× time per step"))
    expect(card).to_contain_text("No non-private real run of this model and batch 32 in this browser yet")
    expect(card).to_contain_text(re.compile(r"forward and backward [\d.]+ ms, per-example norms [\d.]+ ms"))
    expect(card).to_contain_text(re.compile(r"peak memory \d+ MB \(\+\d+ MB during the run\)"))

    page.locator("#private").uncheck()
    card = _run(page)
    expect(card).to_contain_text(re.compile(r"non-private: training [\d.]+ s per epoch"))

    page.locator("#private").check()
    card = _run(page)
    baseline = r"last non-private run \(run 2, same model, batch 32\): [\d.]+ s per epoch"
    expect(card).to_contain_text(re.compile(baseline))
    expect(card).to_contain_text("both measured on this server")
    text = card.text_content()
    epochs = [float(re.search(pattern, text).group(1))
              for pattern in (r"This run: training ([\d.]+) s per epoch", r"batch 32\): ([\d.]+) s per epoch")]
    if min(epochs) < 1:  # a tiny run's epochs are mostly fixed costs: the headline is the paired step ratio
        expect(card).to_contain_text(re.compile(r"[\d.]+× time per step"))
        expect(card).to_contain_text("Epochs under 1 s are mostly fixed costs")
    else:
        expect(card).to_contain_text(re.compile(r"[\d.]+× time per epoch"))
    page.screenshot(path=str(ARTIFACTS / "cost-desktop.png"), full_page=True)
    for width in (768, 360):  # the card's long measured sentence wraps at phone and tablet widths
        page.set_viewport_size({"width": width, "height": 900})
        page.wait_for_timeout(200)
        assert page.evaluate("document.documentElement.scrollWidth") <= width, f"no sideways scrolling at {width} px"
        box = card.bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= width
    card.screenshot(path=str(ARTIFACTS / "cost-360.png"))
