"""The Privacy audit card in a real browser: after a real run with canaries it draws the ROC with its numbers, the
honest statements and a table per attack, and the DP region of the current settings follows the noise slider; a
simulated run says audits are real-only (and its request leaves the audit knobs out)."""

import re
from urllib.parse import urlencode

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

REAL = {"mode": "real", "dataset_size": 200, "batch_size": 32, "epochs": 2, "target_epsilon": 10,
        "audit": "canaries", "canaries": 50}


def test_the_audit_card_after_a_real_run(session, server):
    page = session.open("?" + urlencode(REAL))
    expect(page.locator("#audit-canaries")).to_be_checked()  # the controls come from GET /api/params
    expect(page.locator("#canaries")).to_be_attached()
    page.locator("#run").click()
    expect(page.locator("#progress-text")).to_contain_text("Finished", timeout=240_000)
    details = page.locator("#audit-details")
    expect(details).to_contain_text(re.compile(r"reaches AUC 0\.\d+ and TPR [\d.]+% at FPR 0\.1%"))
    expect(details).to_contain_text("not an epsilon lower bound")
    expect(details).to_contain_text(re.compile(r"ε ≥ [\d.]+ with 95% confidence; the accountant's ε is [\d.]+"))
    expect(details).to_contain_text("a lower bound, never a measurement of ε")
    expect(page.locator("#metrics")).to_contain_text(re.compile(r"canary audit: ε ≥ [\d.]+"))
    roc = page.locator("#chart-roc")
    expect(roc).to_have_attribute("aria-label", re.compile(r"AUC 0\.\d+.*under the region the run's ε [\d.]+ allows"))

    page.locator("#card-audit [data-table]").click()
    rows = [[c.text_content() for c in r.locator("th, td").all()]
            for r in page.locator("#card-audit [data-table-box] table tr").all()]
    assert rows[0][:2] == ["attack", "AUC"]
    assert {r[0] for r in rows[1:5]} == {"loss threshold", "confidence threshold", "entropy threshold",
                                         "logistic regression"}
    assert any(r[0].startswith("(ε, δ)-DP bound for ε") for r in rows) and rows[-1][0].startswith("canaries: ε ≥")

    before = roc.get_attribute("aria-label")
    page.locator("#card-audit [data-view=roclog]").click()
    expect(page.locator("#chart-roclog")).to_be_visible()
    page.locator("#noise_multiplier").focus()
    page.keyboard.press("End")  # the most noise: the current settings' region shrinks
    expect(roc).not_to_have_attribute("aria-label", before, timeout=10_000)
    allowed = re.search(r"would allow TPR at most ([\d.]+)% at FPR 1%", roc.get_attribute("aria-label"))
    was = re.search(r"would allow TPR at most ([\d.]+)% at FPR 1%", before)
    assert allowed and was and float(allowed.group(1)) < float(was.group(1))


def test_a_simulated_run_has_no_audit_and_says_why(session):
    page = session.open("?" + urlencode({"mode": "simulate", "epochs": 2}))
    with page.expect_request(lambda r: r.url.endswith("/api/runs") and r.method == "POST") as request:
        page.locator("#run").click()
    body = request.value.post_data_json
    assert "audit" not in body and "canaries" not in body
    expect(page.locator("#progress-text")).to_contain_text("Finished", timeout=30_000)
    expect(page.locator("#audit-details")).to_contain_text("Audits are measured on real runs only")
