"""The HTML report: valid, self-contained, and rendered by a real headless browser without errors."""

import math
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import html5lib
import numpy as np
import pytest
import torch
from matplotlib.image import imread

import lstmlab
from lstmlab.inspect import collect_trace, collect_text_trace, write_report
from lstmlab.inspect.features import inside_quotes

TEXT = 'KING:\nWhat say you, "my lord" (and lady)?\nHAMLET:\n"Nothing" [he said], "nothing at all."\n' * 3
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


class TinyCharModel(torch.nn.Module):
    """Embedding -> 2-layer lstmlab.LSTM -> Linear: a stand-in for a character language model."""

    def __init__(self, vocab_size):
        super().__init__()
        self.embedding = torch.nn.Embedding(vocab_size, 8)
        self.lstm = lstmlab.LSTM(8, 12, num_layers=2)
        self.decoder = torch.nn.Linear(12, vocab_size)

    def forward(self, tokens, state=None, *, trace=False):
        output, state, lstm_trace = self.lstm(self.embedding(tokens), state, trace=True)
        return (self.decoder(output), state, lstm_trace) if trace else (self.decoder(output), state)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    torch.manual_seed(0)
    vocabulary = sorted(set(TEXT))
    recording = collect_text_trace(TinyCharModel(len(vocabulary)), [vocabulary.index(c) for c in TEXT], list(TEXT))
    out_dir = tmp_path_factory.mktemp("report")
    return write_report(recording, out_dir, summary={"model": "tiny test model", "parameters": "1,234"})


def parse_strictly(path):
    """Parse with html5lib in strict mode: any HTML parse error raises."""
    parser = html5lib.HTMLParser(strict=True, namespaceHTMLElements=False)
    return parser.parse(Path(path).read_text(encoding="utf-8"))


def test_report_is_valid_html_with_no_external_references(report):
    document = parse_strictly(report)
    attributes = [(element.tag, name, value) for element in document.iter() for name, value in element.attrib.items()]
    for tag, name, value in attributes:
        if name in ("src", "href", "action", "poster", "srcset"):
            assert value.startswith("data:") or value.startswith("#"), (tag, name, value[:80])
    assert not document.findall(".//link") and not document.findall(".//iframe")
    for script in document.findall(".//script"):
        assert "src" not in script.attrib
    source = report.read_text(encoding="utf-8")
    assert not re.search(r"url\s*\(|@import|https?://|//cdn|fetch\(|XMLHttpRequest", source)
    images = document.findall(".//img")
    assert len(images) >= 4 and all(image.attrib["src"].startswith("data:image/png;base64,") for image in images)


def test_report_has_the_sections_and_pngs(report):
    source = report.read_text(encoding="utf-8")
    for heading in ("Read the text through one unit", "Units that follow something in the text",
                    "Gate saturation", "How long does the memory last?", "The model"):
        assert heading in source
    assert "tiny test model" in source and "left-saturated" in source
    for name in ("saturation.png", "memory.png", "heatmaps_layer0.png", "heatmaps_layer1.png"):
        assert (report.parent / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_strict_parser_catches_broken_html(tmp_path):
    broken = tmp_path / "broken.html"
    broken.write_text("<!DOCTYPE html><html><head><title>x</title></head><body><p>a</div></body></html>")
    with pytest.raises(html5lib.html5parser.ParseError):
        parse_strictly(broken)


def test_report_for_bidirectional_batch_first_input(tmp_path):
    torch.manual_seed(1)
    lstm = lstmlab.LSTM(3, 5, batch_first=True, bidirectional=True)
    recording = collect_trace(lstm, torch.randn(2, 30, 3))
    assert (recording.num_steps, recording.batch_size, recording.num_directions) == (30, 2, 2)
    path = write_report(recording, tmp_path)
    parse_strictly(path)
    assert 'id="pick-direction"' in path.read_text(encoding="utf-8")


# --- a real browser ---------------------------------------------------------------------

def run_chromium(page, *extra):
    """Run headless chromium on a file; return (stdout, the page's console lines)."""
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is missing: `make test` installs it (apt-get install chromium)"
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
             *extra, Path(page).resolve().as_uri()],
            capture_output=True, text=True, timeout=180,
        )
    assert done.returncode == 0, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    return done.stdout, console


def test_console_capture_sees_script_errors(tmp_path):
    """The harness itself: a page with a script error must show it on the console."""
    page = tmp_path / "error.html"
    page.write_text("<!DOCTYPE html><html><head><title>x</title></head><body><script>missingFunction();</script></body></html>")
    _, console = run_chromium(page, "--dump-dom")
    assert any("Uncaught ReferenceError" in line for line in console), console


def test_browser_runs_the_report_script_and_renders_it(report, tmp_path):
    dom, console = run_chromium(report, "--dump-dom")
    assert console == []
    assert 'data-rendered="yes"' in dom  # the script ran to its last line
    assert dom.count("background-color: rgb(") > len(TEXT)  # the explorer and unit cards are coloured
    quoted_characters = int(inside_quotes(list(TEXT)).sum())
    assert dom.count('class="feature-on"') >= quoted_characters  # cards tracking quotes underline them
    screenshot = tmp_path / "screenshot.png"
    _, console = run_chromium(report, f"--screenshot={screenshot}", "--window-size=1200,1800", "--hide-scrollbars")
    assert console == []
    pixels = imread(screenshot)[..., :3]  # (height, width, 3) floats in [0, 1]
    assert pixels.shape[:2] == (1800, 1200)
    not_white = (pixels < 0.9).any(axis=-1).mean()
    assert pixels.std() > 0.05 and not_white > 0.03, (pixels.std(), not_white)
    coloured = (np.abs(pixels[..., 0] - pixels[..., 2]) > 0.2).mean()  # red or blue cells painted on the text
    assert coloured > 0.002, coloured


def test_plain_words_reading_follows_the_statistics(tmp_path):
    from lstmlab import LayerTrace, Trace
    from lstmlab.inspect import as_recording

    steps, units = 40, 4
    forget = torch.full((steps, 1, 1, units), 0.99)
    forget[:, :, :, 3] = 0.02  # one unit wipes its cell at every step
    half = torch.full_like(forget, 0.5)
    layer = LayerTrace(i=half, f=forget, g=half * 0, o=half, c=torch.randn_like(half), h=half * 0)
    recording = as_recording(Trace((layer,)), pieces=["a"] * steps)
    page = write_report(recording, tmp_path, text_features=False).read_text(encoding="utf-8")
    assert "3 of 4 forget gates are fully open more than half of the time" in page
    assert "and 1 are mostly shut" in page
    # median half-life of the four units: between log(.5)/log(.99) and the wiping unit's
    median = sorted([math.log(0.5) / math.log(0.99)] * 3 + [math.log(0.5) / math.log(0.02)])[1]
    assert f"loses half of its cell in {median:.1f} steps" in page


def test_browser_renders_a_projected_bidirectional_report_with_markup_in_the_text(tmp_path):
    import json

    torch.manual_seed(2)
    lstm = lstmlab.LSTM(3, 6, num_layers=2, bidirectional=True, proj_size=2)
    recording = collect_trace(lstm, torch.randn(12, 1, 3))
    recording.pieces = ["</script>", "<b>", "&amp;", '"', "\n", "x"] + ["(y)"] * 6
    # open the explorer on h of unit 5: h has only proj_size = 2 features, so nothing to paint
    path = write_report(recording, tmp_path, highlight=(1, 1, 5, "h"))
    document = parse_strictly(path)
    data = json.loads(document.find(".//script[@id='lstm-data']").text)
    assert data["pieces"] == recording.pieces and data["sizes"]["1/h"] == 2 and data["sizes"]["1/c"] == 6
    dom, console = run_chromium(path, "--dump-dom")
    assert console == [] and 'data-rendered="yes"' in dom
    assert "h is projected to 2 features" in dom
