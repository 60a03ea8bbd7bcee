"""Drawing a report or a training curve leaves the user's matplotlib session as it was."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_reports_and_curves_do_not_switch_the_backend_or_load_pyplot(tmp_path) -> None:
    script = textwrap.dedent(
        f"""
        import json, sys
        import matplotlib
        matplotlib.use("svg")  # the user's choice, e.g. a notebook's inline backend
        import numpy as np
        from pathlib import Path
        from reiqa.evaluate import evaluate, make_splits, write_report
        from reiqa.train.report import plot_training_curve

        rng = np.random.default_rng(0)
        y = rng.uniform(0, 100, 60)
        x = np.c_[y + rng.normal(0, 5, 60), rng.normal(size=(60, 3))]
        result = evaluate(x, y, make_splits(60, n_splits=2, seed=0), name="all features")
        write_report([result], Path({str(tmp_path)!r}) / "report", title="t", protocol="p")
        run = Path({str(tmp_path)!r}) / "run"
        run.mkdir()
        rows = [dict(step=s, epoch=s / 2, loss=7 - s / 10, accuracy=s / 10, lr=0.1) for s in range(1, 5)]
        (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\\n" for r in rows))
        plot_training_curve(run, run / "curve.png")
        assert matplotlib.get_backend() == "svg", matplotlib.get_backend()
        assert "matplotlib.pyplot" not in sys.modules
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "report" / "scatter-all-features.png").stat().st_size > 1000
    assert (tmp_path / "run" / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
