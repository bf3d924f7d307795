"""`.ci/apt_sources.sh`: mirror detection over every apt layout that exists, and a backports
source that apt itself parses.

The bug this guards: on deb822-only images (Debian 12 containers: `sources.list.d/debian.sources`,
no `sources.list`), `debian_mirror` printed the mirror twice under `set -o pipefail`, `.ci/run`
wrote a two-line `deb` entry, and every `apt-get update` after it failed with "Malformed entry 1".
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / ".ci" / "apt_sources.sh"

DEB822 = """\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
"""
ONE_LINE = """\
# comment
deb [arch=amd64 signed-by=/usr/share/keyrings/debian.gpg] http://list.example/debian bookworm main
deb http://list.example/debian-security bookworm-security main
"""
OTHER_VENDOR = "deb https://packages.example.com/apt cloud-sdk main\n"


def bash(etc: Path, script: str) -> subprocess.CompletedProcess[str]:
    """Runs `script` after sourcing apt_sources.sh with APT_ETC=etc under `set -euo pipefail`,
    the options .ci/run uses."""
    return subprocess.run(
        ["bash", "-c", f"set -euo pipefail; . {SCRIPT}; {script}"],
        env={"APT_ETC": str(etc), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )


def layout(tmp_path: Path, *, deb822: bool, sources_list: bool) -> Path:
    etc = tmp_path / "apt"
    (etc / "sources.list.d").mkdir(parents=True)
    (etc / "sources.list.d" / "vendor.list").write_text(OTHER_VENDOR)
    if deb822:
        (etc / "sources.list.d" / "debian.sources").write_text(DEB822)
    if sources_list:
        (etc / "sources.list").write_text(ONE_LINE)
    return etc


@pytest.mark.parametrize(
    ("deb822", "sources_list", "expected"),
    [
        (True, False, "http://mirror.example/debian"),  # Debian 12 images (this CI machine)
        (False, True, "http://list.example/debian"),  # older images
        (True, True, "http://mirror.example/debian"),  # both: deb822 is read first
        (False, False, "http://deb.debian.org/debian"),  # none: the default
    ],
    ids=["deb822-only", "sources.list-only", "both", "none"],
)
def test_debian_mirror_prints_exactly_one_url(tmp_path, deb822, sources_list, expected):
    etc = layout(tmp_path, deb822=deb822, sources_list=sources_list)
    done = bash(etc, "debian_mirror")
    assert done.returncode == 0, done.stderr
    assert done.stdout == expected + "\n"


def test_debian_mirror_survives_a_missing_etc(tmp_path):
    done = bash(tmp_path / "absent", "debian_mirror")
    assert (done.returncode, done.stdout) == (0, "http://deb.debian.org/debian\n")


@pytest.mark.parametrize("deb822", [True, False], ids=["deb822", "sources.list"])
def test_backports_source_is_written_once_and_parsed_by_apt(tmp_path, deb822):
    etc = layout(tmp_path, deb822=deb822, sources_list=not deb822)
    assert bash(etc, "apt_has_suite bookworm-backports").returncode == 1
    done = bash(etc, "write_backports_source bookworm-backports")
    assert done.returncode == 0, done.stderr
    written = (etc / "sources.list.d" / "bookworm-backports.sources").read_text()
    mirror = "http://mirror.example/debian" if deb822 else "http://list.example/debian"
    assert f"URIs: {mirror}\n" in written
    assert "Suites: bookworm-backports\n" in written
    assert bash(etc, "apt_has_suite bookworm-backports").returncode == 0
    if shutil.which("apt-get") is None:
        return  # the shape checks above still ran; apt's own parser is the stronger one
    parsed = subprocess.run(
        [
            "apt-get",
            "-o",
            "Dir::Etc::sourcelist=/dev/null",
            "-o",
            f"Dir::Etc::sourceparts={etc / 'sources.list.d'}",
            "indextargets",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert parsed.returncode == 0, parsed.stderr


def test_the_old_malformed_list_is_removed_and_a_good_one_kept(tmp_path):
    etc = layout(tmp_path, deb822=True, sources_list=False)
    broken = etc / "sources.list.d" / "bookworm-backports.list"
    # what the old script wrote on deb822-only images: the mirror twice, on two lines
    mirror = "http://mirror.example/debian"
    broken.write_text(f"deb {mirror}\n{mirror} bookworm-backports main\n")
    assert bash(etc, "remove_malformed_list bookworm-backports").returncode == 0
    assert not broken.exists()
    broken.write_text("deb http://mirror.example/debian bookworm-backports main\n")
    assert bash(etc, "remove_malformed_list bookworm-backports").returncode == 0
    assert broken.exists()
