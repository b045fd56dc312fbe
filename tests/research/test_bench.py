"""Throughput measurement and the committed-figures reader."""

from __future__ import annotations

import json

from bplf.research.bench import read_bench, throughput


def test_throughput_and_read_bench(tmp_path):
    rows = [{"preset": p, "batch_size": 4,
             **throughput(p, batch_size=4, steps=1, device="cpu", hidden_channels=8,
                          steps_per_level=1)}
            for p in ("bplf", "glow")]
    assert all(r["train_images_per_s"] > 0 and r["sample_images_per_s"] > 0 for r in rows)
    assert rows[0]["params"] > rows[1]["params"]  # the linear branch and PCA add parameters
    (tmp_path / "bench_cpu.json").write_text(json.dumps(rows))
    table = read_bench(tmp_path)
    assert list(table.index) == [("CPU, 2 threads", 4, "bplf"), ("CPU, 2 threads", 4, "glow")]
    assert table.loc[("CPU, 2 threads", 4, "glow"), "params"] == rows[1]["params"]


def test_throughput_under_bf16_autocast():
    fp32, bf16 = (throughput("bplf", batch_size=4, steps=1, device="cpu", amp=amp,
                             hidden_channels=8, steps_per_level=1) for amp in (False, True))
    assert (fp32["amp"], bf16["amp"]) == (False, True)
    assert bf16["train_images_per_s"] > 0 and bf16["params"] == fp32["params"]
