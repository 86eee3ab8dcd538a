"""`hub demo` runs the network end to end and tells the story it promises."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_demo_runs_every_scene(settings, tmp_path):
    env = dict(os.environ, HUB_VHOST=settings.vhost, HUB_USER_PREFIX=settings.user_prefix,
               HUB_DATA_DIR=str(tmp_path / "var"), HUB_STORE_URL=f"sqlite:///{tmp_path}/demo.sqlite3")
    done = subprocess.run([sys.executable, "-m", "hub.cli", "demo", "--seconds", "1"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    out = done.stdout
    assert done.returncode == 0, done.stderr[-2000:]
    assert "北京(11) 收到 received notice.text 「漫游用户投诉」 from 44 (utf-8)" in out
    assert "广东(44) 收到 received notice.text 「处理结果」 from 11 (gbk)" in out
    assert "NACK [SPOOFED_SENDER]" in out
    assert out.count("「故障通告」") == 1, out  # sent three times, delivered once
    assert "'duplicate': 2" in out, out
    # scene 6: the order travels 44 -> 11 with its marks and both replies, HQ copied on every step
    assert "北京(11) 收到 received order.dispatch 工单" in out, out
    assert out.count("广东(44) 收到 received order.return 工单") == 2, out
    assert "总部收到全部 6 份抄送" in out, out
    # scene 7: knowledge reviewed, delivered to three provinces, all receipts back at HQ
    for code in ("11", "31", "44"):
        assert f"({code}) 收到 received knowledge.delivery" in out, out
    assert "各省回执已到总部" in out and "waited" not in out, out
