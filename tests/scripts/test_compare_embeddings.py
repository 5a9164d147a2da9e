import subprocess
import sys
from pathlib import Path

from deepclust_cli.run import session_settings

REPO = Path(__file__).resolve().parents[2]


def test_two_sessions_side_by_side(deepclust, tiny_spectralnet_ae, tmp_path):
    sessions = []
    for alpha in ("0", "0.1"):
        result = deepclust(*tiny_spectralnet_ae, f"method.alpha={alpha}")
        assert result.code == 0, result.err
        sessions.append(result.session())
    settings = session_settings(sessions[1])
    assert settings.method.alpha == 0.1 and settings.dataset.n_samples == 300

    out = tmp_path / "side_by_side.png"
    script = REPO / "scripts" / "compare_embeddings.py"
    done = subprocess.run([sys.executable, str(script), *map(str, sessions), "--out", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000

    missing = subprocess.run([sys.executable, str(script), str(sessions[0]), str(tmp_path / "nowhere")], capture_output=True, text=True)
    assert missing.returncode == 1
    assert missing.stderr.startswith("compare_embeddings: ") and "nowhere" in missing.stderr
