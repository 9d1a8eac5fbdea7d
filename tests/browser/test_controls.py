"""The settings side of the page in a real browser: sliders from the table, the epsilon preview, target-epsilon
solving, URL round trip and clamping, teacher links."""

import json
import re
import urllib.request

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def _params(server):
    with urllib.request.urlopen(f"{server}/api/params") as response:
        return json.load(response)


def _privacy_posts(session):
    return sum(1 for r in session.requests if r.startswith("POST") and r.endswith("/api/privacy"))


def test_page_builds_every_control_from_the_table(session, server):
    page = session.open()
    spec = _params(server)
    sliders = {k["name"] for k in spec["params"] if k["scale"] != "none"}
    assert set(page.locator("input[type=range]").evaluate_all("els => els.map(e => e.id)")) == sliders
    for knob in spec["params"]:
        control = page.locator(f"#{knob['name']}")
        expect(control).to_be_attached()
        label = page.locator(f"label[for={knob['name']}], #{knob['name']} > legend")
        expect(label.first).to_have_text(knob["label"])
    for mode, info in spec["modes"].items():  # an unavailable mode is disabled and says why
        radio = page.locator(f"#mode-{mode}")
        if info["available"]:
            expect(radio).to_be_enabled()
        else:
            expect(radio).to_be_disabled()
            expect(page.locator("#mode-note")).to_contain_text(info["reason"])
    expect(page.locator("#epsilon-rdp")).to_have_text(re.compile(r"^\d"))
    expect(page.locator("#eps-assumptions")).to_contain_text("δ = 1e-5, Poisson sampling")
    expect(page.locator("#band-scale li.current")).to_have_count(1)
    expect(page.locator("#eps-meaning")).to_contain_text("e^ε·FPR + δ")
    help_button = page.locator("[data-control=noise_multiplier] .help-toggle")
    help_button.click()
    expect(page.locator("#noise_multiplier-help")).to_be_visible()
    for canvas in page.locator("canvas").all():
        assert canvas.get_attribute("role") == "img" and canvas.get_attribute("aria-label")


def test_every_slider_moves_and_epsilon_follows(session, server):
    page = session.open()
    spec = _params(server)
    moves_epsilon = set(spec["fields"]["privacy"])
    epsilon = page.locator("#epsilon-rdp")
    expect(epsilon).to_have_text(re.compile(r"^\d"))
    for name in page.locator("input[type=range]").evaluate_all("els => els.map(e => e.id)"):
        slider, shown = page.locator(f"#{name}"), page.locator(f"#{name}-value")
        at_top = slider.input_value() == slider.get_attribute("max")
        forward, back = ("ArrowLeft", "ArrowRight") if at_top else ("ArrowRight", "ArrowLeft")
        before_value, before_eps, posts = shown.text_content(), epsilon.text_content(), _privacy_posts(session)
        slider.press(forward)
        expect(shown).not_to_have_text(before_value)
        new_value = shown.text_content()
        expect(page).to_have_url(re.compile(rf"[?&]{name}=[^&]+"))
        if name in moves_epsilon:
            expect(epsilon).not_to_have_text(before_eps)
        elif name not in spec["fields"]["calibrate"]:
            page.wait_for_timeout(400)
            assert _privacy_posts(session) == posts, f"{name} does not change epsilon, so it must not ask for it"
            expect(epsilon).to_have_text(before_eps)
        slider.press(back)
        expect(shown).to_have_text(before_value)
        expect(epsilon).to_have_text(before_eps)
        assert new_value != before_value


def test_sliding_sends_a_few_requests_not_a_storm(session):
    page = session.open()
    expect(page.locator("#epsilon-rdp")).to_have_text(re.compile(r"^\d"))
    page.wait_for_timeout(300)
    before = _privacy_posts(session)
    slider = page.locator("#noise_multiplier")
    slider.focus()
    for _ in range(20):
        page.keyboard.press("ArrowRight")
    expect(page.locator("#noise_multiplier-value")).to_have_text("10")
    page.wait_for_timeout(600)
    assert 2 <= _privacy_posts(session) - before <= 4, "one debounced preview (RDP + PLD), not one per key"
    expect(page.locator("#statement")).to_contain_text("noise multiplier 10,")


def test_pld_above_its_limit_is_skipped_with_the_reason_and_no_refused_request(session):
    # the page knows the server's limit (GET /api/params), so it never provokes the 400 a browser logs as an error
    page = session.open("?noise_multiplier=0.2&epochs=100&batch_size=4096")
    expect(page.locator("#pld-reason")).to_be_visible()
    expect(page.locator("#pld-reason")).to_contain_text("PLD not computed")
    expect(page.locator("#pld-reason")).to_contain_text("RDP's ε is above 50")
    expect(page.locator("#epsilon-rdp")).to_have_text(re.compile(r"^\d"))
    expect(page.locator("#band-scale li.current")).to_have_attribute("data-band", "very-weak")


def test_target_epsilon_solves_the_noise_multiplier(session):
    page = session.open("?target_epsilon=2&epochs=10")
    expect(page.locator("#epsilon-rdp")).to_have_text(re.compile(r"^\d"))
    page.locator("#solve").check()
    result = page.locator("#solve-result")
    expect(result).to_be_visible()
    expect(result).to_contain_text("Solved: noise multiplier σ =")
    expect(page.locator("#noise_multiplier")).to_be_disabled()
    expect(page.locator("#noise_multiplier-value")).not_to_have_text("1.1")
    solved = float(re.search(r"σ = ([\d.]+)", result.text_content()).group(1))
    assert 0.3 < solved < 1.1
    assert float(page.locator("#epsilon-rdp").text_content()) <= 2.0
    expect(page).to_have_url(re.compile(r"solve=true"))
    page.locator("#target_epsilon").press("ArrowRight")  # a looser budget needs less noise
    expect(page.locator("#target_epsilon-value")).to_have_text("2.2")
    expect(result).not_to_contain_text(f"σ = {solved}")


def test_shuffle_is_a_what_if_and_runs_are_accounted_as_they_sample(session):
    page = session.open("?sampling=shuffle&epochs=20&target_epsilon=3&budget_stop=true")
    expect(page.locator("#eps-assumptions")).to_contain_text("shuffled batches")
    expect(page.locator("#eps-rdp-used")).to_have_text("runs use it, with Poisson sampling")
    shuffled = float(page.locator("#epsilon-rdp").text_content())
    runbar = page.locator("#runbar-eps")
    expect(runbar).to_contain_text("RDP · δ = 1e-5 · Poisson sampling")
    spent = float(re.search(r"ε ([\d.]+)", runbar.text_content()).group(1))
    assert spent < 3 < shuffled  # σ 1.1, B 256, N 60,000, 20 epochs: about 1.5 under Poisson, about 26 shuffled
    expect(page.locator("#budget-note")).to_contain_text("the whole run stays within ε 3")


def test_url_round_trip(session):
    query = ("?noise_multiplier=2.5&max_grad_norm=1.5&batch_size=512&learning_rate=0.25&epochs=45&dataset_size=20000"
             "&delta=1e-6&seed=42&private=true&accountant=pld&sampling=shuffle&target_epsilon=8&budget_stop=true")
    page = session.open(query)
    shown = {"noise_multiplier": "2.5", "max_grad_norm": "1.5", "batch_size": "512", "learning_rate": "0.25",
             "epochs": "45", "dataset_size": "20,000", "delta": "1e-6", "target_epsilon": "8"}
    for name, text in shown.items():
        expect(page.locator(f"#{name}-value")).to_have_text(text)
    expect(page.locator("#seed")).to_have_value("42")
    expect(page.locator("#accountant-pld")).to_be_checked()
    expect(page.locator("#sampling-shuffle")).to_be_checked()
    expect(page.locator("#budget_stop")).to_be_checked()
    expect(page.locator("#notes")).to_be_hidden()
    expect(page.locator("#eps-assumptions")).to_contain_text("shuffled batches")
    expect(page.locator("#eps-pld-used")).to_be_visible()
    expect(page).to_have_url(re.compile(r"noise_multiplier=2\.5&.*seed=42&.*accountant=pld"))
    page.locator("#learning_rate").press("ArrowRight")
    expect(page).to_have_url(re.compile(r"learning_rate=0\.28"))
    page.reload()
    page.wait_for_selector("body.ready", state="attached")
    expect(page.locator("#learning_rate-value")).to_have_text("0.28")
    expect(page.locator("#noise_multiplier-value")).to_have_text("2.5")


def test_out_of_range_link_is_clamped_with_a_visible_note(session):
    page = session.open("?noise_multiplier=500&epochs=abc&batch_size=1024&dataset_size=500&colour=red")
    notes = page.locator("#notes")
    expect(notes).to_be_visible()
    expect(notes).to_contain_text("noise_multiplier = 500 is above the maximum 50; using 50")
    expect(notes).to_contain_text('epochs = "abc" is not a number')
    expect(notes).to_contain_text("batch_size 1024 exceeds dataset_size 500; using 256")
    expect(notes).to_contain_text('unknown setting "colour"')
    expect(page.locator("#noise_multiplier-value")).to_have_text("50")
    expect(page.locator("#batch_size-value")).to_have_text("256")
    expect(page).to_have_url(re.compile(r"noise_multiplier=50&"))
    page.locator("#notes-dismiss").click()
    expect(notes).to_be_hidden()


def test_teacher_link_hides_controls(session):
    page = session.open("?hide=seed,accountant,presets,learn")
    for name in ("seed", "accountant", "presets"):
        expect(page.locator(f"[data-control={name}]")).to_be_hidden()
    expect(page.locator("#learn")).to_be_hidden()
    expect(page.locator("#noise_multiplier")).to_be_visible()
    expect(page.locator("#history")).to_be_visible()
    page.locator("#epochs").press("ArrowRight")
    expect(page).to_have_url(re.compile(r"hide=seed,accountant,presets,learn$"))


def test_presets_apply_with_commentary(session):
    page = session.open()
    page.locator("#preset").select_option("clip-too-small")
    expect(page.locator("#max_grad_norm-value")).to_have_text("0.01")
    expect(page.locator("#preset-note")).to_contain_text("clip fraction")
    page.locator("#use-recommended").click()
    expect(page.locator("#epochs-value")).to_have_text("60")
    expect(page.locator("#noise_multiplier-value")).to_have_text("1.1")
    expect(page.locator("#preset")).to_have_value("tutorial")
    page.locator("#epochs").press("ArrowLeft")
    expect(page.locator("#preset")).to_have_value("")


def test_best_known_preset_sets_the_tanh_cnn_and_the_script_downloads_with_its_knobs(session):
    page = session.open()
    page.locator("#preset").select_option("best-known")
    expect(page.locator("#preset-note")).to_contain_text("Tramer & Boneh 2021")
    expect(page.locator("#model-tanh_cnn")).to_be_checked()
    expect(page.locator("#mode-real")).to_be_checked()
    expect(page.locator("#momentum-value")).to_have_text("0.9")
    expect(page).to_have_url(re.compile(r"momentum=0\.9.*model=tanh_cnn"))
    with page.expect_download() as info:
        page.locator("#export-script").click()
    script = open(info.value.path(), encoding="utf-8").read()
    assert info.value.suggested_filename == "dpsgd_mnist.py"
    assert "'model': 'tanh_cnn'" in script and "'momentum': 0.9" in script and "'noise_multiplier': 1.23" in script
