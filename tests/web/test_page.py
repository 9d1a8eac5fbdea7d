"""The page as the server sends it: the template, static modules and vendored Chart.js, under a strict CSP."""

import json
import re
from html.parser import HTMLParser
from pathlib import Path

from app.params import table

ROOT = Path(__file__).resolve().parents[2]
JS = ROOT / "static" / "js"


def test_node_fixture_matches_the_knob_table():
    """tests/js/knobs.json is the table the JS unit tests read; regenerate it when app/params.py changes:
    python -c "import json; from app.params import table; print(json.dumps(table(), indent=1, ensure_ascii=False))"
    > tests/js/knobs.json"""
    assert json.loads((ROOT / "tests/js/knobs.json").read_text(encoding="utf-8")) == json.loads(json.dumps(table()))


def test_node_spec_fixture_matches_get_api_params(client):
    """tests/js/spec.json is the rest of GET /api/params the JS unit tests read (all but the table and the server's
    modes); regenerate it from the answer when the request fields or the runs' sampling change."""
    served = client.get("/api/params").get_json()
    fixture = json.loads((ROOT / "tests/js/spec.json").read_text(encoding="utf-8"))
    assert fixture == {k: v for k, v in served.items() if k not in ("params", "modes")}


class _Inline(HTMLParser):
    def __init__(self):
        super().__init__()
        self.inline_scripts, self.styles, self.scripts, self.links = 0, 0, [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "style" in attrs or tag == "style":
            self.styles += 1
        if any(name.startswith("on") for name in attrs):
            self.inline_scripts += 1
        if tag == "script":
            if "src" in attrs:
                self.scripts.append(attrs["src"])
            else:
                self.inline_scripts += 1
        if tag == "link":
            self.links.append(attrs.get("href"))


def test_index_has_no_inline_script_or_style_and_loads_what_exists(client):
    response = client.get("/")
    assert response.status_code == 200
    assert "style-src 'self'" in response.headers["Content-Security-Policy"]
    parsed = _Inline()
    parsed.feed(response.get_data(as_text=True))
    assert parsed.inline_scripts == 0 and parsed.styles == 0
    assert "/vendor/chart.umd.js" in parsed.scripts and "/static/js/main.js" in parsed.scripts
    for url in parsed.scripts + parsed.links:
        assert client.get(url).status_code == 200, url


def test_every_module_import_resolves():
    for module in JS.glob("*.js"):
        for target in re.findall(r"from '(\./[^']+)'", module.read_text(encoding="utf-8")):
            assert (JS / target).is_file(), f"{module.name} imports missing {target}"


def test_modules_never_inject_markup_or_code():
    """What the CSP would block, or what would open the page to injection, is not written in the first place."""
    banned = re.compile(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|"
                        r"setAttribute\(\s*'style'|\.style\.")
    for module in JS.glob("*.js"):
        assert not banned.search(module.read_text(encoding="utf-8")), module.name


def test_only_charts_js_touches_chart_js():
    uses = re.compile(r"new Chart\b|\{ Chart \} = globalThis|(globalThis|window)\.Chart\b")
    assert [m.name for m in JS.glob("*.js") if uses.search(m.read_text(encoding="utf-8"))] == ["charts.js"]


def test_favicon_is_served(client):
    assert client.get("/favicon.ico").status_code == 200


def test_every_hideable_section_exists_and_is_documented(client):
    html = client.get("/").get_data(as_text=True)
    listed = re.search(r"export const SECTIONS = \[([^\]]*)\]", (JS / "state.js").read_text(encoding="utf-8"))
    sections = re.findall(r"'([a-z-]+)'", listed.group(1))
    assert len(sections) >= 8
    for name in sections:
        assert f'data-control="{name}"' in html, name
        assert f"<code>{name}</code>" in html, f"{name} is not listed in the Learn section's teacher note"
