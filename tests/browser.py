"""A real browser for the report tests: headless Chromium driven from its command line.

`probe(page)` opens a copy of the page with a small script added at the top of <head>: it
records script errors, failed loads and console.error calls from the first moment, and on
`load` writes what a person would see (the title, every table's rows, each image's natural
width) into the DOM as JSON, which `--dump-dom` prints. `screenshot(page, png)` saves the page
as a picture.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
TIMEOUT_S = 60

PROBE = """<script>
window.__errors = [];
window.addEventListener("error", function (e) {
  window.__errors.push(e.message || ("could not load " + (e.target && (e.target.src || e.target.href))));
}, true);
(function () {
  var error = console.error;
  console.error = function () { window.__errors.push(Array.from(arguments).join(" ")); error.apply(console, arguments); };
})();
window.addEventListener("load", function () {
  var text = function (el) { return el ? el.textContent.trim() : ""; };
  var tables = Array.from(document.querySelectorAll("table")).map(function (t) {
    return {caption: text(t.caption),
            headers: Array.from(t.tHead.rows[0].cells).map(text),
            rows: Array.from(t.tBodies[0].rows).map(function (r) { return Array.from(r.cells).map(text); })};
  });
  var images = Array.from(document.images).map(function (i) {
    return {alt: i.alt, naturalWidth: i.naturalWidth, complete: i.complete};
  });
  // a person sorts the first table by a numeric column: click its header
  var sorted = null, table = document.querySelector("table.sortable");
  if (table) {
    var heads = Array.from(table.tHead.rows[0].cells);
    var col = heads.findIndex(function (h) { return h.classList.contains("num"); });
    if (col >= 0) {
      heads[col].click();
      sorted = {header: text(heads[col]), values: Array.from(table.tBodies[0].rows).map(function (r) {
        var v = r.cells[col].dataset.v; return v === undefined ? null : Number(v); })};
    }
  }
  var out = document.createElement("pre");
  out.id = "__probe";
  out.textContent = JSON.stringify({title: document.title, h1: text(document.querySelector("h1")),
                                    tables: tables, images: images, sorted: sorted, errors: window.__errors});
  document.body.appendChild(out);
});
</script>"""


def find_browser() -> str | None:
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def _command(browser: str, profile: Path) -> list[str]:
    return [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-extensions", "--hide-scrollbars", f"--user-data-dir={profile}"]


def probe(page: Path, work: Path) -> dict:
    """What the page shows once loaded, as the PROBE script records it."""
    browser = find_browser()
    html = page.read_text(encoding="utf-8")
    probed = work / f"probe_{page.name}"
    probed.write_text(re.sub(r"<head>", "<head>" + PROBE.replace("\\", "\\\\"), html, count=1), encoding="utf-8")
    proc = subprocess.run(_command(browser, work / "profile") + ["--virtual-time-budget=10000", "--dump-dom",
                                                                 probed.resolve().as_uri()],
                          capture_output=True, text=True, timeout=TIMEOUT_S)
    m = re.search(r'<pre id="__probe">(.*?)</pre>', proc.stdout, re.S)
    if m is None:
        raise AssertionError(f"the page did not finish loading in the browser:\n{proc.stderr[-2000:]}")
    import html as html_lib

    return json.loads(html_lib.unescape(m.group(1)))


def screenshot(page: Path, png: Path, work: Path, size: str = "1300,2600") -> Path:
    browser = find_browser()
    subprocess.run(_command(browser, work / "profile") + [f"--window-size={size}", f"--screenshot={png}",
                                                          page.resolve().as_uri()],
                   capture_output=True, text=True, timeout=TIMEOUT_S)
    return png
