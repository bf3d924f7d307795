# Sourced by .ci/run (and by tests/test_ci_apt_sources.py): which Debian mirror apt already uses,
# and the bookworm-backports source written beside it.
#
# APT_ETC (default /etc/apt) is the root both functions read and write, so the tests can lay out
# each form of apt configuration that exists: deb822 `.sources` only (Debian 12 images),
# one-line `sources.list` only, both, or none.

DEFAULT_DEBIAN_MIRROR=http://deb.debian.org/debian

# Prints exactly one line: the first `.../debian` archive URI apt is configured with (deb822
# `URIs:` fields first, then one-line `deb` entries), or the default mirror. Every read may fail
# (missing files, no match) without failing the function under `set -euo pipefail`.
debian_mirror() {
    local etc=${APT_ETC:-/etc/apt} uri
    uri=$(
        {
            cat "$etc"/sources.list.d/*.sources 2>/dev/null || true
            cat "$etc"/sources.list "$etc"/sources.list.d/*.list 2>/dev/null || true
        } | awk '
            /^[[:space:]]*URIs:/ { for (i = 2; i <= NF; i++) print $i; next }
            /^[[:space:]]*deb[[:space:]]/ {
                # deb [options] URI suite...: the URI is the first field after any [ ... ] block
                i = 2
                if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                if (i <= NF) print $i
            }' | awk '$0 ~ /^https?:\/\/[^[:space:]]+\/debian\/?$/ { print; exit }'
    )
    printf '%s\n' "${uri:-$DEFAULT_DEBIAN_MIRROR}"
}

# True when any apt source already names SUITE (as a deb822 `Suites:` entry or a one-line suite).
apt_has_suite() {
    local etc=${APT_ETC:-/etc/apt} suite=$1
    # grep -q may stop reading early, and cat fails on a missing file: neither may decide the result.
    { cat "$etc"/sources.list "$etc"/sources.list.d/*.list "$etc"/sources.list.d/*.sources 2>/dev/null || true; } |
        awk -v s="$suite" '!/^[[:space:]]*#/ { for (i = 1; i <= NF; i++) if ($i == s) found = 1 } END { exit !found }'
}

# Writes $APT_ETC/sources.list.d/SUITE.sources in deb822 form for the mirror apt uses, and checks
# what it wrote: one URI that is a URL, the suite, `main`. Returns non-zero (writing nothing) if
# the check fails, so a malformed entry never reaches `apt-get update`.
write_backports_source() {
    local etc=${APT_ETC:-/etc/apt} suite=$1 mirror keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    mirror=$(debian_mirror)
    if ! [[ $mirror =~ ^https?://[^[:space:]]+$ ]]; then
        echo "error: mirror '$mirror' is not one URL; not writing $suite" >&2
        return 1
    fi
    mkdir -p "$etc/sources.list.d"
    {
        echo "Types: deb"
        echo "URIs: $mirror"
        echo "Suites: $suite"
        echo "Components: main"
        if [ -e "$keyring" ]; then echo "Signed-By: $keyring"; fi
    } >"$etc/sources.list.d/$suite.sources"
}

# Earlier versions of .ci/run wrote SUITE.list in one-line form, and on deb822-only images wrote
# it with two URIs on two lines ("Malformed entry 1 ... (Suite)" from every later apt-get
# update). Removes that file when any of its entries is not `deb URL SUITE main`.
remove_malformed_list() {
    local etc=${APT_ETC:-/etc/apt} suite=$1 list
    list="$etc/sources.list.d/$suite.list"
    [ -e "$list" ] || return 0
    if grep -vqE "^deb https?://[^[:space:]]+ $suite main\$" "$list"; then
        echo "removing malformed $list" >&2
        rm -f "$list"
    fi
}
