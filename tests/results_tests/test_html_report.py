"""`gensweep report`: one self-contained HTML page about a run directory.

Fast tests build run directories by hand (records, samples.png, real TensorBoard event files);
the slow ones run one real tiny sweep for the module and open its page in headless Chromium.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from runner.cli import main
from runner.results.html_report import SAMPLES_FILE, optuna_study, render_report, write_report
from runner.results.report import SWEEP_FILE, load_run, picture_file
from runner.results.run_view import objective_text
from runner.spec import parse_document

CHROMIUM = Path("/usr/bin/chromium")  # Debian's `chromium` package
IMAGE = re.compile(r'<img class="(exact|plot)" width="(\d+)" height="(\d+)" alt="([^"]*)" src="data:image/png;base64,([^"]+)">')

DOCUMENT = {
    "name": "fake_latent",
    "model": {"name": "vae", "hidden_dim": 32},
    "data": {"name": "digits", "train_size": 256, "val_size": 64},
    "search": {"model.latent_dim": {"grid": [2, 4, 8]}},
    "tune": {"metric": "val/recon", "mode": "min"},
}


def _fake_run(run_dir: Path, document: dict, trials: list[dict]) -> Path:
    """A run directory as `gensweep run` leaves it: sweep.json, and per trial its record,
    samples.png (a distinct random picture, 40x30) and TensorBoard scalars at steps 10, 20, 30."""
    from runner.train.tblog import TrialLogger

    spec = parse_document(document, "fake.yaml")
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / SWEEP_FILE).write_text(json.dumps(
        {"name": spec.name, "source": "fake.yaml", "metrics": spec.metrics, "modes": spec.modes, "document": document}
    ))
    for index, trial in enumerate(trials):
        directory = run_dir / f"trial_{index}"
        directory.mkdir()
        status = trial.get("status", "finished")
        record = {"trial_id": f"t{index}", "status": status, "swept": trial["swept"], "metrics": trial["metrics"],
                  "epoch": 3, "error": trial.get("error")}
        (directory / "gensweep.json").write_text(json.dumps(record))
        if status != "error":
            picture = np.random.default_rng(index).integers(0, 256, (30, 40, 3), dtype=np.uint8)
            cv2.imwrite(str(directory / SAMPLES_FILE), picture)
        logger = TrialLogger(directory)
        for step in (10, 20, 30):
            logger.scalars("val", {name.split("/")[1]: value * 40 / step for name, value in trial["metrics"].items()}, step)
            logger.scalars("train", {"loss": 100.0 / step, "epoch": step / 10}, step)
        logger.close()
    return run_dir


class _Pictures(HTMLParser):
    """The page's Pictures section as parsed HTML: per trial heading (h3 text), its figures as
    (caption text, the img's attributes)."""

    def __init__(self):
        super().__init__()
        self.trials: dict[str, list[tuple[str, dict]]] = {}
        self.notes: list[str] = []
        self._section: str | None = None
        self._open: str | None = None  # "h3", "figcaption" or "note" while inside one
        self._text = ""
        self._trial = ""
        self._pending_caption = ""

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "section":
            self._section = attributes.get("id")
        if self._section != "pictures":
            return
        if tag in ("h3", "figcaption") or (tag == "p" and attributes.get("class") == "note"):
            self._open, self._text = ("note" if tag == "p" else tag), ""
        elif tag == "img":
            caption = self._pending_caption
            self.trials[self._trial].append((caption, attributes))

    def handle_data(self, data):
        if self._open:
            self._text += data

    def handle_endtag(self, tag):
        if self._section != "pictures" or not self._open:
            return
        if tag == "h3":
            self._trial = " ".join(self._text.split())
            self.trials[self._trial] = []
        elif tag == "figcaption":
            self._pending_caption = self._text.strip()
        elif tag == "p":
            self.notes.append(self._text)
        if tag in ("h3", "figcaption", "p"):
            self._open = None


def _pictures(page: str) -> _Pictures:
    parser = _Pictures()
    parser.feed(page)
    return parser


def _images(page: str) -> list[tuple[str, int, int, str, bytes]]:
    return [(kind, int(w), int(h), alt, base64.b64decode(data)) for kind, w, h, alt, data in IMAGE.findall(page)]


def _assert_self_contained(page: str) -> None:
    assert "<script" not in page.lower()
    assert not re.search(r'(src|href)="(?!data:image/png;base64,|#)', page)  # only embedded images, own anchors
    assert "url(" not in page and "@import" not in page and "@font-face" not in page


def test_report_of_a_single_objective_sweep(tmp_path):
    trials = [
        {"swept": {"model.latent_dim": 2}, "metrics": {"val/recon": 30.0, "val/kl": 2.0}},
        {"swept": {"model.latent_dim": 4}, "metrics": {"val/recon": 10.0, "val/kl": 4.0}},
        {"swept": {"model.latent_dim": 8}, "metrics": {"val/recon": 20.0, "val/kl": 8.0}},
        {"swept": {"model.latent_dim": 8}, "metrics": {}, "status": "error", "error": "ValueError: boom (loop.py:12)"},
    ]
    run_dir = _fake_run(tmp_path / "run", DOCUMENT, trials)
    write_report(run_dir, tmp_path / "page.html")
    page = (tmp_path / "page.html").read_text()

    _assert_self_contained(page)
    assert "<title>gensweep report: fake_latent · val/recon (min)</title>" in page
    assert "<h1>gensweep report: fake_latent</h1>" in page and "Objective: val/recon (min)" in page
    images = _images(page)
    assert len(images) == len(IMAGE.findall(page)) == page.count("<img ")  # every image matched
    samples = [image for image in images if image[0] == "exact"]
    for (_, width, height, alt, png), directory in zip(samples, ["trial_0", "trial_1", "trial_2"], strict=True):
        assert png == (run_dir / directory / SAMPLES_FILE).read_bytes()  # the file itself, unchanged
        assert (width, height) == (40, 30)  # shown at its natural size
    assert [alt for *_, alt, _ in samples] == ["samples of latent_dim=2", "samples of latent_dim=4", "samples of latent_dim=8"]
    plots = {alt: png for kind, _, _, alt, png in images if kind == "plot"}
    assert list(plots) == [
        "val/recon of every trial", "val/kl of every trial", "train/loss of every trial",  # objective first; no train/epoch
        "Parameter importances", "Slice plot of val/recon",  # one parameter: no contour plot
    ]
    assert all(cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR) is not None for png in plots.values())
    assert "Pareto" not in page
    assert "ValueError: boom (loop.py:12)" in page.split('id="failures"')[1]
    best_row = next(row for row in page.split("<tr") if "<td>*</td>" in row)
    assert "<td>t1</td>" in best_row and page.count("<td>*</td>") == 1

    # One model of the run (runner.results.run_view): the page's table has `gensweep show`'s columns and marks,
    # and its objective is the spec's text.
    spec = parse_document(DOCUMENT, "fake.yaml")
    assert f"Objective: {objective_text(spec.metrics, spec.modes)}</p>" in page
    table = CliRunner().invoke(main, ["show", str(run_dir)]).output.splitlines()
    head, body = page.split("<thead>")[1].split("</thead>")
    assert re.findall(r"<th[^>]*>([^<]*)</th>", head) == ["", *table[0].split()]
    assert re.findall(r"<tr[^>]*><td>([^<]*)</td>", body) == [row[0].strip() for row in table[1:]] == ["", "*", "", ""]


def test_report_shows_every_picture_a_trial_keeps(tmp_path):
    trials = [
        {"swept": {"model.latent_dim": 2}, "metrics": {"val/recon": 30.0, "val/kl": 2.0}},
        {"swept": {"model.latent_dim": 4}, "metrics": {"val/recon": 10.0, "val/kl": 4.0}},
        {"swept": {"model.latent_dim": 8}, "metrics": {"val/recon": 20.0, "val/kl": 8.0}},
    ]
    run_dir = _fake_run(tmp_path / "run", DOCUMENT, trials)
    page = _pictures(render_report(load_run(run_dir)))
    assert page.trials == {} and page.notes == [f"No trial keeps pictures besides {SAMPLES_FILE}."]

    rng = np.random.default_rng(7)
    kept = {  # what the loop writes: picture_file(tag) of each Images tag, real PNGs
        "trial_0": {"reconstruction": (48, 64, 3), "manifold": (20, 20, 1)},
        "trial_1": {"reconstruction": (48, 64, 3), "input_output_target": (33, 90, 3)},
    }
    for directory, pictures in kept.items():
        for tag, shape in pictures.items():
            assert cv2.imwrite(str(run_dir / directory / picture_file(tag)), rng.integers(0, 256, shape, dtype=np.uint8))
    (run_dir / "trial_1" / "cycle_a_b_a.png").write_bytes(b"\x89PNG truncated")  # a damaged one: named, left out
    run = load_run(run_dir)
    html_text = render_report(run)
    _assert_self_contained(html_text)
    page = _pictures(html_text)

    # Every trial with pictures (as few as these: in run order), each with its pictures by file
    # name, the best one marked; trial_2 keeps none.
    assert list(page.trials) == ["latent_dim=2 t0", "latent_dim=4 (best) t1"]
    shown = {"trial_1": page.trials["latent_dim=4 (best) t1"], "trial_0": page.trials["latent_dim=2 t0"]}
    for directory, figures in shown.items():
        assert [caption for caption, _ in figures] == sorted(picture_file(tag) for tag in kept[directory])
        for caption, image in figures:
            path = run_dir / directory / caption
            assert image["src"].startswith("data:image/png;base64,")
            png = base64.b64decode(image["src"].removeprefix("data:image/png;base64,"))
            assert png == path.read_bytes()  # the file itself, embedded unchanged
            decoded = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
            assert decoded is not None and (int(image["width"]), int(image["height"])) == (decoded.shape[1], decoded.shape[0])
            assert image["alt"] == f"{caption} of latent_dim={'4' if directory == 'trial_1' else '2'}"
    assert run.problems == [f"{run_dir / 'trial_1' / 'cycle_a_b_a.png'}: damaged (not a PNG file); picture left out"]
    # The samples section is unchanged: each trial's samples.png, once.
    samples = [png for kind, *_, alt, png in _images(html_text) if alt.startswith("samples of ")]
    assert samples == [(run_dir / f"trial_{index}" / SAMPLES_FILE).read_bytes() for index in range(3)]


@pytest.mark.parametrize(
    "tune, swept_values, expected",
    [
        ({}, [2], "No Optuna plots: Optuna&#x27;s plots need at least 2 finished trials; this run has 1."),
        ({}, [4, 4], "Parameter importances: need a parameter with 2 or more distinct values among finished trials."),
        ({"scheduler": "pbt"}, [2, 4], "No Optuna plots: population-based training changes values during a trial"),
    ],
)
def test_report_says_in_one_line_why_a_plot_is_missing(tmp_path, tune, swept_values, expected):
    document = {**DOCUMENT, "tune": {**DOCUMENT["tune"], **tune}}
    if tune.get("scheduler") == "pbt":
        document["search"] = {"model.latent_dim": {"choice": [2, 4, 8]}}  # PBT mutates; it walks no grid
    trials = [{"swept": {"model.latent_dim": value}, "metrics": {"val/recon": 10.0 + i}} for i, value in enumerate(swept_values)]
    write_report(_fake_run(tmp_path / "run", document, trials), tmp_path / "page.html")
    page = (tmp_path / "page.html").read_text()
    assert expected in page
    assert page.count('<img class="exact"') == len(swept_values)  # the rest of the page is there


def test_every_kind_of_dimension_becomes_an_optuna_distribution(tmp_path):
    document = {**DOCUMENT, "search": {
        "model.latent_dim": {"choice": [2, 4, 8]}, "model.beta": {"uniform": [0.5, 2.0]},
        "train.lr": {"loguniform": [1e-4, 1e-2]}, "train.batch_size": {"int": [32, 128]},
    }, "tune": {"metric": ["val/recon", "val/class_score"], "mode": ["min", "max"]}}
    rng = np.random.default_rng(0)
    trials = [
        {"swept": {"model.latent_dim": int(rng.choice([2, 4, 8])), "model.beta": float(rng.uniform(0.5, 2)),
                   "train.lr": float(10 ** rng.uniform(-4, -2)), "train.batch_size": int(rng.integers(32, 129))},
         "metrics": {"val/recon": float(rng.uniform(10, 30)), "val/class_score": float(rng.uniform(1, 10))}}
        for _ in range(5)
    ]
    run_dir = _fake_run(tmp_path / "run", document, trials)
    run = load_run(run_dir)
    study = optuna_study(run.trials, parse_document(document, "fake.yaml"), run.objectives, run.modes)
    kinds = {name: (type(d).__name__, getattr(d, "log", None)) for name, d in study.trials[0].distributions.items()}
    assert kinds == {"model.latent_dim": ("CategoricalDistribution", None), "model.beta": ("FloatDistribution", False),
                     "train.lr": ("FloatDistribution", True), "train.batch_size": ("IntDistribution", False)}
    expected = [[t["metrics"]["val/recon"], t["metrics"]["val/class_score"]] for t in trials]
    assert sorted(t.values for t in study.trials) == sorted(expected)
    assert [d.name for d in study.directions] == ["MINIMIZE", "MAXIMIZE"]

    write_report(run_dir, tmp_path / "page.html")
    alts = [alt for _, _, _, alt, _ in _images((tmp_path / "page.html").read_text())]
    for metric in ("val/recon", "val/class_score"):
        assert {f"Parameter importances for {metric}", f"Slice plot of {metric}", f"Contour plot of {metric}"} <= set(alts)
    assert "Pareto front" in alts


def test_report_refuses_a_bad_run_directory_or_output_in_one_line(tmp_path):
    result = CliRunner().invoke(main, ["report", str(tmp_path / "nothing")])
    assert result.exit_code == 2 and result.stderr == f"error: {tmp_path / 'nothing'}: no such run directory\n"
    result = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert result.exit_code == 2 and "not a gensweep run directory" in result.stderr
    result = CliRunner().invoke(main, ["report", str(tmp_path), "-o", str(tmp_path / "no" / "page.html")])
    assert result.exit_code == 2 and result.stderr == f"error: -o {tmp_path / 'no' / 'page.html'}: no such directory {tmp_path / 'no'}\n"


# ---- one real sweep -------------------------------------------------------------------------------

TINY_SWEEP = {
    "name": "tiny_report",
    "model": {"name": "vae", "arch": "mlp", "hidden_dim": 64},
    "data": {"name": "digits", "train_size": 256, "val_size": 64},
    "train": {"epochs": 2, "batch_size": 64, "steps_per_epoch": 2, "log_every": 1},
    "quality": {"samples": 64},
    "search": {"model.latent_dim": {"grid": [2, 4]}, "model.beta": {"grid": [0.5, 2.0]}},
    "tune": {"metric": ["val/recon", "val/kl"], "mode": ["min", "min"]},  # two objectives: a Pareto front
}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, ray_runtime) -> Path:
    """A real sweep: 4 trials on Ray (the module's Ray), Optuna's grid sampler."""
    root = tmp_path_factory.mktemp("report_sweep")
    (root / "tiny.yaml").write_text(yaml.safe_dump(TINY_SWEEP))
    result = CliRunner().invoke(main, ["run", str(root / "tiny.yaml"), "--storage-path", str(root / "out")])
    assert result.exit_code == 0, result.output[-4000:]
    return root / "out" / TINY_SWEEP["name"]


@pytest.fixture(scope="module")
def report_page(run_dir) -> Path:
    result = CliRunner().invoke(main, ["report", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert result.output == f"wrote {run_dir / 'report.html'}\n"
    return run_dir / "report.html"


@pytest.mark.slow
def test_report_of_a_real_sweep(run_dir, report_page):
    page = report_page.read_text()
    _assert_self_contained(page)
    images = _images(page)
    trials = load_run(run_dir).trials
    samples = [png for kind, *_, alt, png in images if kind == "exact" and alt.startswith("samples of ")]
    assert samples == [(Path(t.logdir) / SAMPLES_FILE).read_bytes() for t in trials] and len(samples) == 4
    pictures = _pictures(page).trials  # vae logs reconstruction (and, at latent_dim 2, manifold) grids
    assert len(pictures) == 4 and all("reconstruction.png" in [caption for caption, _ in figures] for figures in pictures.values())
    alts = {alt for kind, *_, alt, _ in images if kind == "plot"}
    assert {"val/recon of every trial", "val/kl of every trial", "train/loss of every trial"} <= alts
    for metric in ("val/recon", "val/kl"):
        assert {f"Parameter importances for {metric}", f"Slice plot of {metric}", f"Contour plot of {metric}"} <= alts
    assert "Pareto front" in alts and "No trial failed." in page
    assert page.count("<td>P</td>") == sum(t.pareto for t in trials) >= 1


@pytest.mark.slow
def test_show_sorted_top_as_csv_on_a_real_sweep(run_dir):
    result = CliRunner().invoke(main, ["show", str(run_dir), "--csv", "--sort", "val/recon", "--top", "3"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert list(rows[0])[:6] == ["trial_id", "status", "model.beta", "model.latent_dim", "val/recon", "val/kl"]
    every = sorted(t.metrics["val/recon"] for t in load_run(run_dir).trials)
    assert [float(row["val/recon"]) for row in rows] == every[:3]  # val/recon is minimized: lowest first
    assert all(row["status"] == "finished" and row["model.latent_dim"] in ("2", "4") for row in rows)


@pytest.mark.slow
def test_the_page_renders_in_chromium(run_dir, report_page, tmp_path):
    if not CHROMIUM.exists():
        pytest.skip("headless Chromium not installed: apt-get install chromium (Debian's package)")
    screenshot_path = tmp_path / "page.png"
    # Without the background-networking flags Chromium's own connections fail on a closed network.
    command = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1400,3000", "--hide-scrollbars",
        f"--screenshot={screenshot_path}", report_page.resolve().as_uri(),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    screenshot = cv2.imread(str(screenshot_path), cv2.IMREAD_COLOR)
    assert screenshot is not None, result.stderr[-2000:]
    first = cv2.imread(str(Path(load_run(run_dir).trials[0].logdir) / SAMPLES_FILE), cv2.IMREAD_COLOR)
    scores = cv2.matchTemplate(screenshot, first, cv2.TM_CCOEFF_NORMED)
    _, best, _, (x, y) = cv2.minMaxLoc(scores)
    assert best > 0.9, f"the first trial's samples are not in the screenshot (best match {best:.3f})"
    found = screenshot[y : y + first.shape[0], x : x + first.shape[1]].astype(int)
    assert np.abs(found - first).mean() < 2  # drawn pixel for pixel, not resampled


def test_the_report_modules_load_neither_torch_nor_ray():
    # `gensweep report` and `show` read files: loading torch (~2 s, ~600 MB) for them was waste.
    import subprocess
    import sys

    code = "import sys, runner.results.run_view, runner.results.report, runner.results.html_report; print(sorted({'torch', 'ray'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "[]"
