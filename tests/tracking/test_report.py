"""``kanplatform report``: a self-contained HTML page, checked as text and in a real browser."""

from __future__ import annotations

import base64
import json
import math
import re
import shutil

import pytest
import yaml

from kanplatform import tracking
from kanplatform.cli import main as cli_main
from kanplatform.tracking.report import write_report

from .cdp import Browser, find_chromium


def _experiment(fitted_run, tmp_path):
    """An experiment dir: copies of the fitted run with different sizes and results, three
    inside it and one elsewhere that only its ``trials.csv`` names (as a search may do)."""
    run_dir, _ = fitted_run
    root = tmp_path / "study"
    runs = [(root / "kan" / "g3", 3, 3e-2, 26), (root / "kan" / "g5", 5, 1e-2, 32),
            (root / "kan" / "g10", 10, 2e-3, 47), (tmp_path / "elsewhere" / "g20", 20, 5e-3, 67)]
    for dst, grid, rmse, params in runs:
        shutil.copytree(run_dir, dst, ignore=shutil.ignore_patterns("wandb", "checkpoints"))
        cfg = yaml.safe_load((dst / "config.yaml").read_text())
        cfg["model"]["grid_size"] = grid
        (dst / "config.yaml").write_text(yaml.safe_dump(cfg))
        metrics = json.loads((dst / "metrics.json").read_text())
        metrics["final"]["test/rmse"], metrics["model/params"] = rmse, params
        (dst / "metrics.json").write_text(json.dumps(metrics))
    (root / "trials.csv").write_text(f"trial,run_dir\n0,{runs[3][0]}\n1,{runs[0][0]}\n")
    fit = {"alpha": 3.9, "alpha_ci": [3.5, 4.2], "a": 1e3, "n_points": 3}
    (root / "scaling.json").write_text(json.dumps(
        {"families": {"kan": {"theory_alpha": 4, "fits": {"model/params": fit}}}}))
    tracking.plot_scaling([{"kind": "kan", "model/params": n, "test/rmse": r}
                           for _, _, r, n in runs], {"kan": fit},
                          path=root / "scaling.png")
    return root


def _self_contained(text):
    """No URL the browser would fetch: every src/href is a data: URI or a fragment."""
    refs = re.findall(r"""(?:src|href)\s*=\s*["']?([^"'\s>]+)""", text)
    return [r for r in refs if not r.startswith(("data:", "#"))]


def test_report_on_a_run_dir(fitted_run, tmp_path):
    run_dir, _ = fitted_run
    out = write_report(run_dir, tmp_path / "run.html")
    text = out.read_text()
    assert _self_contained(text) == []
    assert "http://" not in text and "https://" not in text
    table = text[text.index("<table id=runs"):text.index("</table>")]
    assert table.count("<tr>") == 2  # header + the run
    for key in ("test/rmse", "val/rmse", "model/params", "model.kind"):
        assert key in table
    pngs = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", text)
    assert len(pngs) >= 3  # loss curves + 2 spline layers
    assert all(base64.b64decode(p)[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    assert "splines: final_layer0" in text and "Grid stages" in text


def test_report_on_an_experiment_dir(fitted_run, tmp_path, monkeypatch):
    root = _experiment(fitted_run, tmp_path)
    text = write_report(root).read_text()  # default: root/report.html
    assert (root / "report.html").is_file()
    table = text[text.index("<table id=runs"):text.index("</table>")]
    assert table.count("<tr>") == 5
    names = re.findall(r"<tr><td data-v='([^']+)'>", table)
    assert names == ["kan/g10", "g20", "kan/g5", "kan/g3"]  # best test/rmse first
    assert "model.grid_size" in table  # the config key that varies is a column
    assert "scaling.png" in text and "scaling.json" in text
    fits = text[text.index("<table class='sortable fits'"):]
    assert "<td data-v='3.9'>" in fits.replace("class=num ", "")
    assert "Loss curves" in text
    assert _self_contained(text) == []
    _rewrites_redraw_only_changed_curves(root, text, monkeypatch)


def _rewrites_redraw_only_changed_curves(root, first, monkeypatch):
    """A live page is rewritten every few seconds: a figure is drawn once per distinct data
    (the very bytes drawing it again gives); a run whose history changed is drawn anew."""
    from kanplatform.tracking import report
    from kanplatform.tracking.rundata import read_run

    drawn = []
    plain = report.curves_figure
    monkeypatch.setattr(report, "curves_figure", lambda run: drawn.append(run.name) or plain(run))
    stamp = re.compile(r"generated [^<]* by")
    assert stamp.sub("", write_report(root).read_text()) == stamp.sub("", first)
    assert drawn == []
    history = root / "kan" / "g5" / "history.csv"
    lines = history.read_text().splitlines()
    history.write_text("\n".join(lines + [lines[-1]]) + "\n")  # one more row: a new curve
    changed = write_report(root).read_text()
    assert drawn == ["kan/g5"] and stamp.sub("", changed) != stamp.sub("", first)
    run = read_run(root / "kan" / "g5", root)
    fresh = base64.b64encode(report._fig_png(plain(run))).decode()
    assert fresh in changed


def test_report_cli(fitted_run, tmp_path, capsys):
    run_dir, _ = fitted_run
    out = tmp_path / "cli.html"
    assert cli_main(["report", str(run_dir), "-o", str(out), "--title", "my run"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert "<title>my run</title>" in out.read_text()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli_main(["report", str(empty)]) == 1
    assert "holds no run" in capsys.readouterr().err


@pytest.mark.slow
def test_report_in_headless_chromium(fitted_run, tmp_path):
    binary = find_chromium()
    if binary is None:
        pytest.skip("chromium is not installed (make browser installs it)")
    root = _experiment(fitted_run, tmp_path)
    pages = {"run": write_report(fitted_run[0], tmp_path / "run.html"),
             "experiment": write_report(root)}
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    browser = Browser(binary, profile)
    try:
        for name, page in pages.items():
            browser.navigate(page.resolve().as_uri())
            rows = browser.evaluate("document.querySelectorAll('#runs tbody tr').length")
            assert rows == (1 if name == "run" else 4)
            assert "Runs" in browser.evaluate("document.body.innerText")
            images = browser.evaluate(
                "Array.from(document.images).map(i => [i.complete, i.naturalWidth])")
            assert len(images) >= 3 and all(ok and w > 0 for ok, w in images), images
            shot = browser.screenshot(tmp_path / f"{name}.png")
            assert shot[:8] == b"\x89PNG\r\n\x1a\n" and len(shot) > 20_000
            assert browser.errors() == [], browser.errors()
        # the table sorts: click "test/rmse" twice -> descending
        order = """(() => {
            const th = Array.from(document.querySelectorAll('#runs th'))
                .find(h => h.textContent === 'test/rmse');
            th.click(); th.click();
            return Array.from(document.querySelectorAll('#runs tbody tr'))
                .map(r => r.cells[0].textContent);
        })()"""
        assert browser.evaluate(order) == ["kan/g3", "kan/g5", "g20", "kan/g10"]
        assert browser.errors() == []
    finally:
        browser.close()

    from matplotlib.image import imread

    img = imread(tmp_path / "experiment.png")
    assert img.shape[0] > 500 and img[..., :3].std() > 0.05  # not a blank page


def test_log_axes_of_live_figures_are_plain_text_with_sparse_minor_ticks(tmp_path):
    """A live page redraws curves while a study trains: no mathtext labels (their parsing was
    most of a figure's cost), minor ticks only at 2 and 5 over more than three decades."""
    from kanplatform.tracking import report
    from kanplatform.tracking.rundata import Run

    run = Run(path=tmp_path, name="r", history={
        "step": [1.0, 2.0, 3.0, 4.0], "train/loss": [1.0, 1e-3, 1e-6, 1e-8],
        "val/rmse": [0.5, 0.3, 0.2, 0.1]})
    figures = [report.curves_figure(run), report._overlay("train/loss", [run]),
               report._overlay("val/rmse", [run])]
    for fig in figures:
        assert report._fig_png(fig).startswith(b"\x89PNG")  # drawn: the labels are set
        ax = fig.axes[0]
        labels = [t.get_text() for t in ax.yaxis.get_majorticklabels()
                  + ax.yaxis.get_minorticklabels() if t.get_text()]
        assert labels and not any("$" in t for t in labels), labels
        lo, hi = ax.get_ylim()
        mantissas = {round(v / 10 ** math.floor(math.log10(v) + 1e-9))
                     for v in ax.yaxis.get_minorticklocs() if lo <= v <= hi}
        assert mantissas <= {2, 5} if hi > 1e3 * lo else len(mantissas) > 2
    decades = [t.get_text() for t in figures[0].axes[0].yaxis.get_majorticklabels()]
    assert "1e\N{MINUS SIGN}06" in decades
